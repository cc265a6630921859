/**
 * Reads one HTTP/1.x response from a socket's bytes, for the HTTP probe: the status line and
 * headers (interim 1xx responses skipped), then, only when asked, the body (by `Content-Length`,
 * `chunked` or up to the close), capped. Owns nothing else: connecting, timing and judging are
 * the probe's. Small on purpose: a probe asks one question of one connection and closes it, so
 * the general client (agents, pools, streams, a parser per socket) is work it does not need at
 * hundreds of probes a second.
 */

/** The largest status line and headers read, bytes (Node's own default). */
export const MAX_HEAD_BYTES = 16 * 1024;

/** A response's status line and headers. */
export interface ResponseHead {
  status: number;
  /** The reason phrase (may be empty). */
  reason: string;
  /** Header names lowercased; a repeated header's values joined with `, `. */
  headers: Map<string, string>;
}

/** What a read of the head gives: the head and the bytes after it, more needed, or an error. */
export type HeadStep =
  | { kind: 'head'; head: ResponseHead; rest: Buffer }
  | { kind: 'more' }
  | { kind: 'error'; message: string };

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})(?: ([^\r\n]*))?$/;

/**
 * Reads the head of the final (non-1xx) response at the start of `bytes`.
 * @example
 * readHead(Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok')) // → kind 'head', rest 'ok'
 */
export function readHead(bytes: Buffer): HeadStep {
  let start = 0;
  for (;;) {
    const end = bytes.indexOf(CRLFCRLF, start);
    if (end < 0) {
      return bytes.length - start > MAX_HEAD_BYTES
        ? { kind: 'error', message: `response headers exceed ${MAX_HEAD_BYTES} bytes` }
        : { kind: 'more' };
    }
    if (end - start > MAX_HEAD_BYTES)
      return { kind: 'error', message: `response headers exceed ${MAX_HEAD_BYTES} bytes` };
    const lines = bytes.toString('latin1', start, end).split('\r\n');
    const match = STATUS_LINE.exec(lines[0]!);
    if (!match) {
      return {
        kind: 'error',
        message: `not an HTTP/1.x response: ${JSON.stringify(lines[0]!.slice(0, 60))}`,
      };
    }
    const headers = new Map<string, string>();
    for (let index = 1; index < lines.length; index++) {
      const line = lines[index]!;
      const colon = line.indexOf(':');
      if (colon <= 0) return { kind: 'error', message: `malformed response header line ${index}` };
      const name = line.slice(0, colon).trim().toLowerCase();
      const value = line.slice(colon + 1).trim();
      const before = headers.get(name);
      headers.set(name, before === undefined ? value : `${before}, ${value}`);
    }
    const status = Number(match[1]);
    start = end + CRLFCRLF.length;
    // An interim response (100 Continue, 103 Early Hints) precedes the real one.
    if (status >= 100 && status < 200 && status !== 101) continue;
    return {
      kind: 'head',
      head: { status, reason: match[2] ?? '', headers },
      rest: bytes.subarray(start),
    };
  }
}

/** What a body read gives so far. */
export type BodyStep =
  | { kind: 'more' }
  | { kind: 'done'; body: Buffer }
  | { kind: 'too_large' }
  | { kind: 'error'; message: string };

/**
 * Reads a response body after its head: by `Content-Length`, `Transfer-Encoding: chunked`, or
 * up to the end of the connection; never keeps more than `maxBytes` of body.
 */
export class BodyReader {
  private readonly mode: 'length' | 'chunked' | 'close';
  private readonly length: number;
  private readonly parts: Buffer[] = [];
  private size = 0;
  /** Chunked: bytes received and not yet decoded. */
  private pending: Buffer = Buffer.alloc(0);
  /** Chunked: bytes left in the current chunk's data, or -1 while reading a size line. */
  private chunkLeft = -1;
  /** Chunked: the last chunk was read; its trailers are being skipped. */
  private inTrailers = false;

  constructor(
    head: ResponseHead,
    private readonly maxBytes: number,
  ) {
    const encoding = head.headers.get('transfer-encoding');
    const length = head.headers.get('content-length');
    if (encoding !== undefined && /(?:^|,)\s*chunked\s*$/i.test(encoding)) {
      this.mode = 'chunked';
      this.length = -1;
    } else if (length !== undefined && /^\d+$/.test(length)) {
      this.mode = 'length';
      this.length = Number(length);
    } else {
      this.mode = 'close';
      this.length = -1;
    }
  }

  /** The declared length, when the response has one. */
  get declaredLength(): number | undefined {
    return this.mode === 'length' ? this.length : undefined;
  }

  /** Takes the next bytes of the connection. */
  push(bytes: Buffer): BodyStep {
    if (this.mode === 'chunked') return this.pushChunked(bytes);
    const wanted =
      this.mode === 'length' ? Math.min(bytes.length, this.length - this.size) : bytes.length;
    const step = this.keep(bytes.subarray(0, wanted));
    if (step) return step;
    return this.mode === 'length' && this.size === this.length ? this.done() : { kind: 'more' };
  }

  /** The connection ended: the body is whole only when read up to the close. */
  end(): BodyStep {
    if (this.mode === 'close') return this.done();
    return { kind: 'error', message: 'the connection closed before the end of the body' };
  }

  private keep(bytes: Buffer): BodyStep | undefined {
    if (bytes.length === 0) return undefined;
    this.size += bytes.length;
    if (this.size > this.maxBytes) return { kind: 'too_large' };
    this.parts.push(bytes);
    return undefined;
  }

  private done(): BodyStep {
    return { kind: 'done', body: Buffer.concat(this.parts, this.size) };
  }

  private pushChunked(bytes: Buffer): BodyStep {
    this.pending = this.pending.length === 0 ? bytes : Buffer.concat([this.pending, bytes]);
    for (;;) {
      if (this.chunkLeft > 0) {
        const take = Math.min(this.chunkLeft, this.pending.length);
        if (take === 0) return { kind: 'more' };
        const step = this.keep(this.pending.subarray(0, take));
        if (step) return step;
        this.pending = this.pending.subarray(take);
        this.chunkLeft -= take;
        continue;
      }
      const eol = this.pending.indexOf('\r\n', 0, 'latin1');
      if (eol < 0) {
        return this.pending.length > 1024
          ? { kind: 'error', message: 'a chunk size line exceeds 1024 bytes' }
          : { kind: 'more' };
      }
      const line = this.pending.toString('latin1', 0, eol);
      this.pending = this.pending.subarray(eol + 2);
      if (this.inTrailers) {
        // Trailers end with an empty line; the body is whole.
        if (line === '') return this.done();
        continue;
      }
      if (this.chunkLeft === 0) {
        // The CRLF after a chunk's data.
        if (line !== '') return { kind: 'error', message: 'a chunk is longer than its size' };
        this.chunkLeft = -1;
        continue;
      }
      const size = /^([0-9a-fA-F]{1,8})\s*(?:;.*)?$/.exec(line);
      if (!size)
        return { kind: 'error', message: `bad chunk size ${JSON.stringify(line.slice(0, 20))}` };
      const chunk = Number.parseInt(size[1]!, 16);
      if (chunk === 0) this.inTrailers = true;
      else this.chunkLeft = chunk;
    }
  }
}
