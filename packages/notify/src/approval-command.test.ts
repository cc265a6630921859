import { describe, expect, it } from 'vitest';
import { parseApprovalCommand } from './approval-command.js';

const ID = '0123456789abcdef0123456789abcdef';

describe('parseApprovalCommand', () => {
  it.each([
    [`approve ${ID}`, { decision: 'approve', target: 'request', id: ID }],
    [`  DENY ${ID.toUpperCase()} `, { decision: 'deny', target: 'request', id: ID }],
    ['revive scout', { decision: 'approve', target: 'agent', agent: 'scout' }],
    ['skip miner-2', { decision: 'deny', target: 'agent', agent: 'miner-2' }],
    ['/revive@pit_bot scout', { decision: 'approve', target: 'agent', agent: 'scout' }],
    [
      'revive 3F2A1C4E/scout',
      { decision: 'approve', target: 'agent', agent: 'scout', cell: '3f2a1c4e' },
    ],
    [
      'skip 3f2a1c4e-9b7d/miner-2',
      { decision: 'deny', target: 'agent', agent: 'miner-2', cell: '3f2a1c4e-9b7d' },
    ],
  ])('reads %j', (text, expected) => {
    expect(parseApprovalCommand(text)).toEqual(expected);
  });

  it.each([
    'approve',
    'approve 123',
    `approve ${ID} now`,
    'revive ../etc',
    'revive Scout',
    'revive 3f2a/scout',
    'revive xyzxyzxy/scout',
    'revive 3f2a1c4e/',
    'revive 3f2a1c4e/scout/x',
    '+1',
    'yes',
    'revive',
    `approve ${ID}x`,
    'x'.repeat(400),
  ])('refuses %j', (text) => {
    expect(parseApprovalCommand(text)).toBeNull();
  });
});
