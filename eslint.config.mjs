// ESLint (flat config): the recommended JavaScript and typescript-eslint rules over the TypeScript
// sources; formatting is Prettier's (npm run lint checks both).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config({ ignores: ['dist/**', 'node_modules/**', '**/*.js', '**/*.mjs'] }, js.configs.recommended, ...tseslint.configs.recommended, {
  rules: {
    // A leading underscore marks what is deliberately left out (`{ seconds: _s, ...rest }`).
    // Optional dependencies (tfjs-node, the native kernel) and modules chosen at run time load on
    // demand with require(); a static import would make them mandatory.
    '@typescript-eslint/no-require-imports': 'off',
    '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
  },
});
