// Lint rules, including the layer rules: protocol/ imports nothing of src/, and only
// src/transport/uws*.ts may import uWebSockets.js. Session and agent logic never sees msgpackr.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const noSrcFromProtocol = {
  patterns: [{ group: ['**/src/**', '../src/*', '../../src/*'], message: 'protocol/ must not import src/.' }],
  paths: [{ name: 'uWebSockets.js', message: 'protocol/ is transport-agnostic.' }],
};
const noTransportLibs = {
  paths: [
    { name: 'uWebSockets.js', message: 'Only src/transport/uws*.ts may touch uWebSockets.js.' },
    { name: 'msgpackr', message: 'Use the codecs in protocol/; session logic never sees msgpackr.' },
  ],
};

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'node_modules/**',
      'coverage/**',
      'bench/results/**',
      'eslint.config.js',
      'scripts/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-console': 'error',
    },
  },
  { files: ['protocol/**/*.ts'], rules: { 'no-restricted-imports': ['error', noSrcFromProtocol] } },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/transport/uws*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [noTransportLibs.paths[0]] }],
    },
  },
  {
    files: ['src/session/**/*.ts', 'src/agents/**/*.ts', 'src/server/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', noTransportLibs] },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/require-await': 'off',
    },
  },
  { files: ['src/cli/**/*.ts'], rules: { 'no-console': 'off' } },
);
