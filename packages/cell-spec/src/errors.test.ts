import { describe, expect, it } from 'vitest';
import { CellError, PitError, toCellError } from './errors.js';

describe('PitError', () => {
  it('carries a code, a retryable flag, a cause and its class name', () => {
    const cause = new Error('disk');
    const error = new CellError('CELL_IO', 'x: write: disk', { cause, retryable: true });
    expect(error).toBeInstanceOf(PitError);
    expect(error).toMatchObject({ code: 'CELL_IO', retryable: true, cause, name: 'CellError' });
    expect(new CellError('CELL_INVALID', 'x').retryable).toBe(false);
  });

  it('recognises an error from another copy of the package where instanceof fails', () => {
    const foreign = Object.assign(new Error('from another copy'), {
      [Symbol.for('pit.error')]: true,
      code: 'CELL_LOCKED',
    });
    expect(foreign instanceof PitError).toBe(false);
    expect(PitError.is(foreign)).toBe(true);
    expect(toCellError(foreign, '/x', 'read')).toBe(foreign);
    expect(PitError.is(new Error('plain'))).toBe(false);
    expect(PitError.is(null)).toBe(false);
  });
});

describe('toCellError', () => {
  const errno = (code: string) => Object.assign(new Error(`${code}: failed`), { code });
  it.each([
    ['ENOENT', 'CELL_NOT_FOUND', false],
    ['ELOOP', 'CELL_UNSAFE_PATH', false],
    ['ENOTDIR', 'CELL_UNSAFE_PATH', false],
    ['ENOSPC', 'CELL_IO', true],
    ['EACCES', 'CELL_IO', false],
  ])('maps %s to %s naming the path and action', (code, expected, retryable) => {
    const error = toCellError(errno(code), '/cells/x/cell.json', 'read');
    expect(error).toMatchObject({ code: expected, retryable });
    expect(error.message).toMatch(/^\/cells\/x\/cell\.json: read: /);
  });
});
