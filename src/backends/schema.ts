import type pg from 'pg'

/** Demo rows the schema is seeded with: user ids 1..SEED_USERS exist on a fresh database. */
export const SEED_USERS = 1000
export const SEED_PRODUCTS = 20

// Any fixed number: the lock that makes two cluster workers starting at once create the schema once.
const SCHEMA_LOCK = 727_001

/**
 * Creates the tables if missing and seeds them if empty, in one transaction under an advisory
 * lock (every cluster worker runs this at start). Safe to run any number of times.
 */
export async function ensureSchema (pool: pg.Pool): Promise<{ created: boolean, seeded: boolean }> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK])
    const existed = (await client.query("SELECT to_regclass('public.users') IS NOT NULL AS present")).rows[0].present as boolean
    await client.query(`
      CREATE TABLE IF NOT EXISTS users (
        id         bigserial PRIMARY KEY,
        name       text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
        email      text NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
        created_at timestamptz NOT NULL DEFAULT now()
      )`)
    await client.query(`
      CREATE TABLE IF NOT EXISTS products (
        id          serial PRIMARY KEY,
        name        text NOT NULL,
        price_cents integer NOT NULL CHECK (price_cents >= 0),
        stock       integer NOT NULL DEFAULT 0
      )`)
    const empty = (await client.query('SELECT NOT EXISTS (SELECT 1 FROM users) AS empty')).rows[0].empty as boolean
    if (empty) {
      await client.query(`
        INSERT INTO users (name, email)
        SELECT 'User ' || i, 'user' || i || '@example.com' FROM generate_series(1, $1::int) AS i`, [SEED_USERS])
      await client.query(`
        INSERT INTO products (name, price_cents, stock)
        SELECT 'Product ' || i, 100 * i + 99, 10 * i FROM generate_series(1, $1::int) AS i`, [SEED_PRODUCTS])
    }
    await client.query('COMMIT')
    return { created: !existed, seeded: empty }
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}
