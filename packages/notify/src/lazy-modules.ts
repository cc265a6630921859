import { createRequire } from 'node:module';

// The Nostr libraries (nostr-tools with its @noble crypto, and ws) weigh about 15 MB in a
// process. They are loaded on first use, not when @pit/notify is imported, so that a daemon
// without [nostr] never loads them. Loading is synchronous (require, through their CommonJS
// builds) because the functions that need them (parseSecretKey, openGiftWrap, …) are.
const load = createRequire(import.meta.url);

/** nostr-tools/pure, loaded on first use. */
export const nostrPure = (): typeof import('nostr-tools/pure') => load('nostr-tools/pure');
/** nostr-tools/nip04, loaded on first use. */
export const nostrNip04 = (): typeof import('nostr-tools/nip04') => load('nostr-tools/nip04');
/** nostr-tools/nip17, loaded on first use. */
export const nostrNip17 = (): typeof import('nostr-tools/nip17') => load('nostr-tools/nip17');
/** nostr-tools/nip19, loaded on first use. */
export const nostrNip19 = (): typeof import('nostr-tools/nip19') => load('nostr-tools/nip19');
/** nostr-tools/nip44, loaded on first use. */
export const nostrNip44 = (): typeof import('nostr-tools/nip44') => load('nostr-tools/nip44');
/** nostr-tools/abstract-relay, loaded on first use. */
export const nostrRelay = (): typeof import('nostr-tools/abstract-relay') =>
  load('nostr-tools/abstract-relay');
/** ws's WebSocket client, loaded on first use (its named export: what `require` returns differs between loaders). */
export const wsWebSocket = (): typeof import('ws').WebSocket =>
  (load('ws') as typeof import('ws')).WebSocket;
