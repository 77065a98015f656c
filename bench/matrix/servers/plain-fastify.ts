/** The reference: Fastify with one trivial route and nothing else, one process. */
import Fastify from 'fastify'

const app = Fastify()
app.get('/health', async () => ({ status: 'ok' }))
const address = await app.listen({ port: Number(process.env.PORT ?? 0), host: '127.0.0.1' })
console.log(JSON.stringify({ msg: 'server listening', address }))
process.once('SIGTERM', () => { void app.close().then(() => process.exit(0)) })
