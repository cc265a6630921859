// The logger contract is shared vocabulary: it lives in @pit/cell-spec.
export { silentLogger, type Logger } from '@pit/cell-spec';
