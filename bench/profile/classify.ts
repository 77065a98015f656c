/** Which layer of the server a profiled function belongs to, from its script URL and name. */
export const LAYERS = [
  'socket reads and writes (system calls)', 'node http and sockets', 'fastify core and routing', 'fastify hooks', 'logger and request id',
  'body parsing (JSON, MessagePack, plain-data check)', 'schema validation', 'shedding', 'metrics',
  'serialization', 'job runner, timing, timers and AbortControllers', 'Piscina hand-off and messages',
  'the task itself', 'promises, ticks and async context', 'garbage collection', 'other JavaScript', 'V8 and libuv (program)', 'idle', 'start-up (loading modules)'
] as const
export type Layer = (typeof LAYERS)[number]

const BY_URL: ReadonlyArray<readonly [RegExp, Layer]> = [
  [/node:internal\/(modules|bootstrap|deps\/cjs-module-lexer)|node:(fs|path|child_process)|semver|json-schema-traverse|src\/(app|server|cluster)/, 'start-up (loading modules)'],
  [/node:internal\/(process\/(task_queues|promises)|async_hooks)|node:async_hooks/, 'promises, ticks and async context'],
  [/node_modules\/(pino|thread-stream|sonic-boom|fastify\/lib\/logger)|fastify\/lib\/reqIdGenFactory/, 'logger and request id'],
  [/node_modules\/fastify\/lib\/hooks/, 'fastify hooks'],
  [/node_modules\/(ajv|fast-uri|@fastify\/ajv-compiler)|fastify\/lib\/validation/, 'schema validation'],
  [/node_modules\/@fastify\/under-pressure|src\/http\/pressure|src\/admission/, 'shedding'],
  [/node_modules\/(prom-client|tdigest|bintrees)|src\/metrics/, 'metrics'],
  [/node_modules\/(fast-json-stringify|@fastify\/fast-json-stringify-compiler|msgpackr)|fastify\/lib\/(reply|error-serializer)|src\/http\/encoding/, 'serialization'],
  [/node_modules\/(secure-json-parse)|fastify\/lib\/contentTypeParser|src\/http\/codec/, 'body parsing (JSON, MessagePack, plain-data check)'],
  [/node_modules\/(fastify|find-my-way|avvio|light-my-request|@fastify\/error|process-warning|toad-cache|fast-querystring|rfdc)/, 'fastify core and routing'],
  [/node_modules\/piscina|node:internal\/worker|node:worker_threads|src\/placement\/(pool|timed-queue)/, 'Piscina hand-off and messages'],
  [/src\/(jobs|placement|routes|tasks|ws)|node:internal\/(abort_controller|event_target|timers)|node:timers/, 'job runner, timing, timers and AbortControllers'],
  [/cpu-tasks|io-tasks/, 'the task itself'],
  [/node:(_http|http|net|stream|internal\/(http|streams|stream_base|net|dns|url)|buffer|events)/, 'node http and sockets']
]

export function classify (frame: { functionName: string, url: string }): Layer {
  if (frame.functionName === '(garbage collector)') return 'garbage collection'
  if (frame.functionName === '(idle)') return 'idle'
  if (frame.url === '' && /^(writev|writeUtf8String|writeBuffer|writeLatin1String|onStreamRead)$/.test(frame.functionName)) return 'socket reads and writes (system calls)'
  if (frame.url === '') {
    // Ajv's compiled validators and fast-json-stringify's serializers are made with new Function.
    if (/^validate\d*$/.test(frame.functionName)) return 'schema validation'
    if (/^(anonymous|\$main)/.test(frame.functionName)) return 'serialization'
    return 'V8 and libuv (program)'
  }
  for (const [pattern, layer] of BY_URL) if (pattern.test(frame.url)) return layer
  return 'other JavaScript'
}
