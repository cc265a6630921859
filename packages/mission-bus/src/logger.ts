// The logger contract is shared vocabulary: it lives in @pit/cell-spec.
export {
  silentLogger,
  describeError,
  type LogFields,
  /**
   * The logger the bus, the server and the client accept: the shared @pit/cell-spec `Logger`
   * (`debug`/`info`/`warn`/`error(message, fields?)`). The package never writes to the console;
   * pass your own or leave it out to stay silent.
   */
  type Logger as BusLogger,
} from '@pit/cell-spec';
