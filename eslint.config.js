// `npm run lint` (part of `npm test`): rules that catch real bugs, not style. The tree is written
// by several people at once, so no rule here asks for mass rewrites or reformatting; a rule
// earns its place by the kind of bug it stops (a promise nobody awaits loses its error, an
// async callback where a sync one is expected runs unawaited, a leftover variable hides a
// forgotten step).
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', 'bench/results/', '**/*.d.ts'] },
  {
    files: ['**/*.ts'],
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    plugins: { '@typescript-eslint': tseslint.plugin },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
    rules: {
      // Promises: an unawaited one loses its rejection (an unhandled rejection ends the agent);
      // `void p` says on purpose. Async functions passed where a void callback is expected
      // (event handlers, setTimeout, forEach) are allowed: they are the house style, and
      // each such handler catches its own errors.
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/await-thenable': 'error',
      // Throwing a string or a plain object loses the stack; passing on what a catch caught
      // (unknown) is fine.
      '@typescript-eslint/only-throw-error': ['error', { allowThrowingUnknown: true, allowThrowingAny: true }],
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true, allowThrowingAny: true }],
      '@typescript-eslint/no-for-in-array': 'error',
      '@typescript-eslint/no-implied-eval': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { args: 'none', caughtErrors: 'none', ignoreRestSiblings: true, varsIgnorePattern: '^_' }],
      // Plain JavaScript mistakes the type-checker lets through.
      'no-async-promise-executor': 'error',
      'no-compare-neg-zero': 'error',
      'no-cond-assign': ['error', 'except-parens'],
      'no-constant-binary-expression': 'error',
      'no-dupe-else-if': 'error',
      'no-empty-pattern': 'error',
      'no-loss-of-precision': 'error',
      'no-self-assign': 'error',
      'no-self-compare': 'error',
      'no-sparse-arrays': 'error',
      'no-unsafe-finally': 'error',
      'no-unsafe-optional-chaining': 'error',
      'no-useless-backreference': 'error',
      'use-isnan': 'error',
      'valid-typeof': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
  // Time only through the injected Clock in agent/ (issue 11 item 2), so every timing is
  // testable with the fake clock. shared/clock.ts holds the one system implementation.
  {
    files: ['agent/**/*.ts'],
    rules: {
      'no-restricted-properties': ['error', { object: 'Date', property: 'now', message: 'use the injected Clock (shared/clock.ts)' }],
      'no-restricted-globals': ['error', { name: 'setTimeout', message: 'use clock.setTimeout or clock.sleep' }, { name: 'setInterval', message: 'use clock.setInterval' }],
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { sourceType: 'module', ecmaVersion: 2023, globals: { process: 'readonly', console: 'readonly', performance: 'readonly', URL: 'readonly', Buffer: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', fetch: 'readonly' } },
    rules: {
      'no-undef': 'error',
      'no-unused-vars': ['error', { args: 'none', caughtErrors: 'none' }],
      'no-async-promise-executor': 'error',
      'no-self-assign': 'error',
      'no-unsafe-finally': 'error',
      'use-isnan': 'error',
      'valid-typeof': 'error',
      eqeqeq: ['error', 'always', { null: 'ignore' }],
    },
  },
);
