// The Fastify ecosystem's style (neostandard: standard, for TypeScript too), and lines of at most 120
// columns, a line whose length is a string's (a message, a description) excepted, as Airbnb's style has it.
import neostandard from 'neostandard'

export default [
  ...neostandard({ ts: true, ignores: ['dist/**', 'coverage/**', '.clinic/**', 'bench/results/**'] }),
  {
    rules: {
      // `void promise` marks a promise left to run on purpose, as typescript-eslint advises.
      'no-void': ['error', { allowAsStatement: true }],
      '@stylistic/max-len': ['error', { code: 120, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreUrls: true, ignoreRegExpLiterals: true }]
    }
  }
]
