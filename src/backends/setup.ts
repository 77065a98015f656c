/**
 * `npm run db:setup`: creates the user service's tables in DATABASE_URL if missing and seeds them
 * if empty (the server does the same when it starts; this is for doing it ahead of time).
 */
import pg from 'pg'
import { ConfigError, parseConfig } from '../config.js'
import { ensureSchema, SEED_PRODUCTS, SEED_USERS } from './schema.js'

let databaseUrl: string | undefined
try {
  databaseUrl = parseConfig().databaseUrl
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`Invalid configuration: ${err.message}\n`)
  process.exit(2)
}
if (databaseUrl === undefined) {
  process.stderr.write('DATABASE_URL is not set: nothing to set up (e.g. DATABASE_URL=postgres://user:pass@127.0.0.1:5432/db npm run db:setup)\n')
  process.exit(2)
}
const pool = new pg.Pool({ connectionString: databaseUrl, max: 1, connectionTimeoutMillis: 5_000 })
try {
  const { created, seeded } = await ensureSchema(pool)
  process.stdout.write(`${created ? 'created the tables users and products' : 'tables users and products already there'}; ` +
    `${seeded ? `seeded ${SEED_USERS} users and ${SEED_PRODUCTS} products` : 'not seeded (users already has rows)'}\n`)
} catch (err) {
  process.stderr.write(`database setup failed: ${(err as Error).message}\n`)
  process.exitCode = 1
} finally {
  await pool.end()
}
