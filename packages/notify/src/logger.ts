// The logger contract is shared vocabulary: it lives in @pit/cell-spec.
export {
  silentLogger,
  redactingLogger,
  describeError,
  type Logger,
  type LogFields,
} from '@pit/cell-spec';
