'use strict';
// An independent SMSC for the dispatcher's end-to-end tests: the npm package `smpp`
// (farhadi/node-smpp 0.5.1) used as a server. None of the dispatcher's code decodes what
// arrives here: node-smpp parses every PDU and decodes every text by its data_coding.
//
//   node server.js --port 0 --system-id ID --password PW [--http-port 0]
//       [--receipt-delay-ms 20] [--latency-ms 0] [--window 10] [--enquire-link-ms 0]
//       [--verbose]
//
// Listens on 127.0.0.1 only and prints one line `listening <smpp_port> <http_port>` once
// both servers listen. The HTTP server answers GET /stats (JSON counters and the complete
// texts per destination), POST /disconnect (closes every SMPP session) and POST /reset
// (zeroes the counters and forgets the texts; sessions stay). SIGTERM/SIGINT exit 0.

const crypto = require('crypto');
const http = require('http');
const smpp = require('smpp');

const HOST = '127.0.0.1';
const SMSC_ID = 'node-smpp';
const USAGE =
  'usage: node server.js --port 0 --system-id ID --password PW [--http-port 0] ' +
  '[--receipt-delay-ms 20] [--latency-ms 0] [--window 10] [--enquire-link-ms 0] [--verbose]';

function fail(message) {
  process.stderr.write(`${message}\n${USAGE}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    port: 0,
    httpPort: 0,
    systemId: null,
    password: null,
    receiptDelayMs: 20,
    latencyMs: 0,
    window: 10,
    enquireLinkMs: 0,
    verbose: false,
  };
  const numbers = {
    '--port': 'port',
    '--http-port': 'httpPort',
    '--receipt-delay-ms': 'receiptDelayMs',
    '--latency-ms': 'latencyMs',
    '--window': 'window',
    '--enquire-link-ms': 'enquireLinkMs',
  };
  const strings = { '--system-id': 'systemId', '--password': 'password' };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--verbose') {
      opts.verbose = true;
      continue;
    }
    if (!(arg in numbers) && !(arg in strings)) fail(`unknown argument ${arg}`);
    if (i + 1 >= argv.length) fail(`${arg} needs a value`);
    const value = argv[++i];
    if (arg in strings) {
      opts[strings[arg]] = value;
      continue;
    }
    const n = Number(value);
    if (!Number.isInteger(n) || n < 0) fail(`${arg} needs a whole number >= 0, not ${value}`);
    opts[numbers[arg]] = n;
  }
  if (opts.systemId === null || opts.password === null) {
    fail('--system-id and --password are required');
  }
  if (opts.window < 1) fail('--window must be at least 1');
  return opts;
}

const opts = parseArgs(process.argv.slice(2));

function log(message) {
  process.stderr.write(`smpp-peer: ${message}\n`);
}

// --- state ---------------------------------------------------------------------------

const COUNTERS = [
  'binds', // successful binds of any kind
  'bind_refused', // binds answered with an error status
  'unbinds',
  'enquire_links', // enquire_link received (and answered)
  'enquire_links_sent', // enquire_link sent by the peer (--enquire-link-ms)
  'enquire_links_acked',
  'submits', // every submit_sm received, accepted or not
  'parts', // submit_sm accepted (answered ESME_ROK with a message_id)
  'messages', // complete texts (a single part, or every part of a concatenated one)
  'duplicates', // complete texts whose (destination, text) was complete before
  'window_max', // most unanswered submit_sm on one session, the arriving one included
  'window_overflows', // submit_sm beyond --window: answered ESME_RMSGQFUL, not accepted
  'receipts_sent', // deliver_sm receipts written (a resend after a lost session counts again)
  'receipts_acked', // deliver_sm_resp with ESME_ROK
  'receipts_nacked', // deliver_sm_resp (or generic_nack) with an error status; not resent
  'disconnects', // sessions closed by POST /disconnect
];

let counters;
let texts; // destination -> [complete text, ...]
let seen; // `${destination}\0${text}` of every complete text
let partials; // `${source}\0${destination}\0${ref}` -> {total, parts: Map(seq -> text)}
let pending; // receipts waiting for a bound receiver/transceiver

function reset() {
  counters = Object.fromEntries(COUNTERS.map((name) => [name, 0]));
  texts = new Map();
  seen = new Set();
  partials = new Map();
  pending = [];
}
reset();

const sessions = new Set();
let sessionCount = 0;

function snapshot() {
  let bound = 0;
  let outstanding = 0;
  let unacked = 0;
  for (const s of sessions) {
    if (s.peer.bound) bound++;
    outstanding += s.peer.outstanding;
    unacked += s.peer.inflight.size;
  }
  return {
    ...counters,
    sessions: sessions.size, // open TCP connections
    bound, // of which bound
    outstanding, // submit_sm waiting for their --latency-ms
    incomplete: partials.size, // concatenated texts still missing parts
    receipts_pending: pending.length, // waiting for a session that can receive
    receipts_unacked: unacked, // sent, no deliver_sm_resp yet
    texts: Object.fromEntries(texts),
  };
}

// --- helpers -------------------------------------------------------------------------

const ID_PREFIX = crypto.randomBytes(3).toString('hex');
let idCounter = 0;

function newMessageId() {
  idCounter += 1;
  return ID_PREFIX + idCounter.toString(16).padStart(8, '0');
}

function stamp(date) {
  // YYMMDDhhmm, UTC.
  const two = (n) => String(n).padStart(2, '0');
  return (
    two(date.getUTCFullYear() % 100) +
    two(date.getUTCMonth() + 1) +
    two(date.getUTCDate()) +
    two(date.getUTCHours()) +
    two(date.getUTCMinutes())
  );
}

function receiptText(text) {
  // The first 20 characters, as printable ASCII ('?' for anything else): the receipt
  // itself is sent as plain ASCII bytes.
  return Array.from(text)
    .slice(0, 20)
    .map((c) => (c >= ' ' && c <= '~' ? c : '?'))
    .join('');
}

function canReceive(session) {
  const p = session.peer;
  return (
    !p.closed &&
    (p.bound === 'transceiver' || p.bound === 'receiver') &&
    session.socket.writable
  );
}

function send(session, pdu, onResponse) {
  if (opts.verbose) {
    log(`#${session.peer.id} > ${pdu.command} seq=${pdu.sequence_number || '?'}`);
  }
  return session.send(pdu, onResponse);
}

// --- texts ---------------------------------------------------------------------------

// The text of one submit_sm as node-smpp decoded it, and where it belongs if it is part
// of a concatenated text (UDH IE 0x00 / 0x08, else the SAR TLVs).
function readPart(pdu) {
  let body = pdu.short_message;
  const empty = !body || body.message === undefined || body.message.length === 0;
  if (empty && pdu.message_payload) body = pdu.message_payload;
  let text = body && body.message !== undefined ? body.message : '';
  if (Buffer.isBuffer(text)) {
    // A data_coding node-smpp does not decode (binary, JIS, ...).
    text = `hex:${text.toString('hex')}`;
  }
  let concat = null;
  for (const ie of (body && body.udh) || []) {
    if (ie[0] === 0x00 && ie[1] === 3 && ie.length >= 5) {
      concat = { ref: ie[2], total: ie[3], seq: ie[4] };
    } else if (ie[0] === 0x08 && ie[1] === 4 && ie.length >= 6) {
      concat = { ref: ie.readUInt16BE(2), total: ie[4], seq: ie[5] };
    }
  }
  if (!concat && pdu.sar_total_segments) {
    concat = {
      ref: pdu.sar_msg_ref_num || 0,
      total: pdu.sar_total_segments,
      seq: pdu.sar_segment_seqnum || 0,
    };
  }
  return { text, concat };
}

function complete(destination, text) {
  counters.messages++;
  const key = `${destination}\0${text}`;
  if (seen.has(key)) counters.duplicates++;
  else seen.add(key);
  if (!texts.has(destination)) texts.set(destination, []);
  texts.get(destination).push(text);
}

function collect(pdu, part) {
  const { text, concat } = part;
  if (!concat || concat.total <= 1) {
    complete(pdu.destination_addr, text);
    return;
  }
  const key = `${pdu.source_addr}\0${pdu.destination_addr}\0${concat.ref}`;
  let entry = partials.get(key);
  if (!entry || entry.total !== concat.total) {
    entry = { total: concat.total, parts: new Map() };
    partials.set(key, entry);
  }
  if (concat.seq < 1 || concat.seq > concat.total) return; // nowhere to put it
  entry.parts.set(concat.seq, text);
  if (entry.parts.size === entry.total) {
    partials.delete(key);
    const whole = [];
    for (let seq = 1; seq <= entry.total; seq++) whole.push(entry.parts.get(seq));
    complete(pdu.destination_addr, whole.join(''));
  }
}

// --- receipts ------------------------------------------------------------------------

function deliverReceipt(receipt, preferred) {
  let target = preferred && canReceive(preferred) ? preferred : null;
  if (!target) {
    for (const s of sessions) {
      if (canReceive(s)) {
        target = s;
        break;
      }
    }
  }
  if (!target) {
    pending.push(receipt);
    return;
  }
  const failed = receipt.failed;
  const message =
    `id:${receipt.messageId} sub:001 dlvrd:${failed ? '000' : '001'}` +
    ` submit date:${receipt.submitDate} done date:${stamp(new Date())}` +
    ` stat:${failed ? 'UNDELIV' : 'DELIVRD'} err:${failed ? '001' : '000'}` +
    ` text:${receipt.text}`;
  const pdu = new smpp.PDU('deliver_sm', {
    source_addr_ton: receipt.destTon,
    source_addr_npi: receipt.destNpi,
    source_addr: receipt.destination,
    dest_addr_ton: receipt.sourceTon,
    dest_addr_npi: receipt.sourceNpi,
    destination_addr: receipt.source,
    esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
    data_coding: 0,
    short_message: Buffer.from(message, 'ascii'),
    receipted_message_id: receipt.messageId,
    message_state: failed ? smpp.MESSAGE_STATE.UNDELIVERABLE : smpp.MESSAGE_STATE.DELIVERED,
  });
  target.peer.inflight.add(receipt);
  counters.receipts_sent++;
  send(target, pdu, (resp) => {
    if (!target.peer.inflight.delete(receipt)) return;
    if (resp.command_status === 0) counters.receipts_acked++;
    else counters.receipts_nacked++;
  });
}

function flushPending(session) {
  for (const receipt of pending.splice(0)) deliverReceipt(receipt, session);
}

// registered_delivery bits 0-1: 1 = a final receipt always, 2 = on failure only,
// 3 = on success only (SMPP 5.0).
function wantsReceipt(registeredDelivery, failed) {
  const want = registeredDelivery & 3;
  return want === 1 || (want === 2 && failed) || (want === 3 && !failed);
}

// --- PDUs ----------------------------------------------------------------------------

function onBind(session, pdu) {
  const p = session.peer;
  let status = 0;
  if (p.bound) status = smpp.ESME_RALYBND;
  else if (pdu.system_id !== opts.systemId) status = smpp.ESME_RBINDFAIL;
  else if (pdu.password !== opts.password) status = smpp.ESME_RINVPASWD;
  if (status) {
    counters.bind_refused++;
    send(session, pdu.response({ command_status: status }));
    if (status !== smpp.ESME_RALYBND) session.close();
    return;
  }
  p.bound = pdu.command.slice('bind_'.length); // transceiver, transmitter, receiver
  counters.binds++;
  send(session, pdu.response({ system_id: SMSC_ID, sc_interface_version: 0x34 }));
  if (opts.enquireLinkMs > 0) {
    p.timer = setInterval(() => {
      counters.enquire_links_sent++;
      send(session, new smpp.PDU('enquire_link'), () => counters.enquire_links_acked++);
    }, opts.enquireLinkMs);
  }
  if (canReceive(session)) flushPending(session);
}

function onSubmit(session, pdu) {
  counters.submits++;
  const p = session.peer;
  if (p.bound !== 'transceiver' && p.bound !== 'transmitter') {
    send(session, pdu.response({ command_status: smpp.ESME_RINVBNDSTS }));
    return;
  }
  const inFlight = p.outstanding + 1;
  counters.window_max = Math.max(counters.window_max, inFlight);
  if (inFlight > opts.window) {
    counters.window_overflows++;
    send(session, pdu.response({ command_status: smpp.ESME_RMSGQFUL }));
    return;
  }
  p.outstanding = inFlight;
  setTimeout(() => answerSubmit(session, pdu), opts.latencyMs);
}

function answerSubmit(session, pdu) {
  const p = session.peer;
  p.outstanding--;
  // A session gone before its answer: the ESME never hears of it, so it is not accepted.
  if (p.closed || !session.socket.writable) return;
  if (!pdu.destination_addr) {
    send(session, pdu.response({ command_status: smpp.ESME_RINVDSTADR }));
    return;
  }
  let part;
  try {
    part = readPart(pdu);
  } catch (err) {
    log(`cannot read submit_sm: ${err.stack || err}`);
    send(session, pdu.response({ command_status: smpp.ESME_RSYSERR }));
    return;
  }
  const messageId = newMessageId();
  const submitDate = stamp(new Date());
  send(session, pdu.response({ message_id: messageId }));
  counters.parts++;
  collect(pdu, part);
  const failed = pdu.destination_addr.endsWith('7');
  if (!wantsReceipt(pdu.registered_delivery, failed)) return;
  const receipt = {
    messageId,
    failed,
    submitDate,
    text: receiptText(part.text),
    source: pdu.source_addr,
    sourceTon: pdu.source_addr_ton,
    sourceNpi: pdu.source_addr_npi,
    destination: pdu.destination_addr,
    destTon: pdu.dest_addr_ton,
    destNpi: pdu.dest_addr_npi,
  };
  setTimeout(() => deliverReceipt(receipt, session), opts.receiptDelayMs);
}

function onPdu(session, pdu) {
  if (opts.verbose) {
    log(
      `#${session.peer.id} < ${pdu.command} seq=${pdu.sequence_number}` +
        ` status=${pdu.command_status}`,
    );
  }
  switch (pdu.command) {
    case 'bind_transceiver':
    case 'bind_transmitter':
    case 'bind_receiver':
      onBind(session, pdu);
      break;
    case 'enquire_link':
      counters.enquire_links++;
      send(session, pdu.response());
      break;
    case 'unbind':
      counters.unbinds++;
      session.peer.bound = null;
      send(session, pdu.response());
      session.close();
      break;
    case 'submit_sm':
      onSubmit(session, pdu);
      break;
    default:
      // Responses reach their callbacks in node-smpp; any other request is not served
      // here (an unknown command_id gets generic_nack, which pdu.response() builds).
      if (!pdu.isResponse()) {
        send(session, pdu.response({ command_status: smpp.ESME_RINVCMDID }));
      }
  }
}

function onClose(session) {
  const p = session.peer;
  if (p.closed) return;
  p.closed = true;
  p.bound = null;
  if (p.timer) clearInterval(p.timer);
  sessions.delete(session);
  if (opts.verbose) log(`#${p.id} closed`);
  // Receipts this session never acknowledged go to another session, or wait for a bind.
  const orphans = [...p.inflight];
  p.inflight.clear();
  for (const receipt of orphans) deliverReceipt(receipt, null);
}

const smppServer = smpp.createServer((session) => {
  sessionCount += 1;
  session.peer = {
    id: sessionCount,
    bound: null,
    outstanding: 0,
    inflight: new Set(),
    closed: false,
    timer: null,
  };
  sessions.add(session);
  if (opts.verbose) log(`#${session.peer.id} connected`);
  session.on('pdu', (pdu) => onPdu(session, pdu));
  session.on('error', (err) => {
    log(`session #${session.peer.id}: ${err.message}`);
    session.destroy();
  });
  session.on('close', () => onClose(session));
});

// --- HTTP control ----------------------------------------------------------------------

function closeAll() {
  const live = [...sessions];
  counters.disconnects += live.length;
  return Promise.all(
    live.map(
      (s) =>
        new Promise((resolve) => {
          const timer = setTimeout(resolve, 2000);
          s.socket.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          s.destroy();
        }),
    ),
  ).then(() => live.length);
}

function reply(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(data),
  });
  res.end(data);
}

const control = http.createServer((req, res) => {
  req.resume();
  const path = req.url.split('?')[0];
  if (req.method === 'GET' && path === '/stats') {
    reply(res, 200, snapshot());
  } else if (req.method === 'POST' && path === '/disconnect') {
    closeAll().then((closed) => reply(res, 200, { closed }));
  } else if (req.method === 'POST' && path === '/reset') {
    reset();
    reply(res, 200, { reset: true });
  } else {
    reply(res, 404, { error: `no ${req.method} ${path}` });
  }
});

for (const server of [smppServer, control]) {
  server.on('error', (err) => {
    log(`server error: ${err.stack || err}`);
    process.exit(1);
  });
}
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));

smppServer.listen(opts.port, HOST, () => {
  control.listen(opts.httpPort, HOST, () => {
    process.stdout.write(
      `listening ${smppServer.address().port} ${control.address().port}\n`,
    );
  });
});
