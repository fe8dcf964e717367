// Drives the official Node SDK (npm "mixpanel") against a running veil
// serve for sdk_node_test.go. Configured by the environment:
//
//   MP_HOST, MP_PORT, MP_PROTOCOL  where veil listens (https: the SDK sends
//                                  the API secret only over HTTPS)
//   MP_TOKEN, MP_SECRET            the project's credentials
//   MP_BASE_MS                     "now" in Unix ms, so the Go test knows
//                                  every time this script sends
//
// Every call runs to completion before the next starts. The script prints
// one JSON object: {"results": [{"call": name, "error": null | "..."}]}.
// An error is whatever the SDK handed its callback (or threw).
'use strict';

const Mixpanel = require('mixpanel');

const env = (k) => {
  const v = process.env[k];
  if (!v) {
    console.error(`node_sdk.js: ${k} is not set`);
    process.exit(2);
  }
  return v;
};

const config = {
  host: env('MP_HOST'),
  port: Number(env('MP_PORT')),
  protocol: env('MP_PROTOCOL'),
  keepAlive: false,
};
const TOKEN = env('MP_TOKEN');
const BASE = Number(env('MP_BASE_MS'));
const HOUR = 3600 * 1000;
const DAY = 24 * HOUR;

// A token-only client for /track, /engage and /groups, as a server would
// configure it, and one with the API secret for /import.
const mp = Mixpanel.init(TOKEN, config);
const quiet = { trace() {}, debug() {}, info() {}, warn() {}, error: console.error };
const mpImport = Mixpanel.init(TOKEN, { ...config, secret: env('MP_SECRET'), logger: quiet });

const results = [];

function errString(err) {
  if (err === null || err === undefined) return null;
  if (Array.isArray(err)) return err.map(String).join('; ');
  return String(err);
}

// call runs one SDK call and records what its callback got.
function call(name, fn) {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      results.push({ call: name, error: 'callback not called within 20 s' });
      resolve();
    }, 20000);
    const done = (err) => {
      clearTimeout(timer);
      results.push({ call: name, error: errString(err) });
      resolve();
    };
    try {
      fn(done);
    } catch (e) {
      done(e);
    }
  });
}

(async () => {
  const U = 'node-user-1';

  // track: one GET /track?data=<base64> per call.
  await call('track', (cb) => mp.track('node_signup', {
    distinct_id: U, plan: 'free', emoji: 'lift-off 🚀', ratio: 1.5, list: [1, 'a'], nested: { k: 'v' },
  }, cb));
  await call('track(time Date, $insert_id)', (cb) => mp.track('node_timed', {
    distinct_id: U, time: new Date(BASE - HOUR), $insert_id: 'node-ins-0001',
  }, cb));
  await call('track(time seconds)', (cb) => mp.track('node_timed_seconds', {
    distinct_id: U, time: Math.floor((BASE - 2 * HOUR) / 1000), $insert_id: 'node-ins-0002',
  }, cb));
  await call('track($device_id)', (cb) => mp.track('node_anonymous', { $device_id: 'node-dev-1' }, cb));
  await call('track($device_id, $user_id)', (cb) => mp.track('node_login', { $device_id: 'node-dev-1', $user_id: U }, cb));

  // track_batch: POST /track, data=<base64 array>, at most 50 per request.
  const bulk = [];
  for (let i = 0; i < 120; i++) {
    bulk.push({ event: 'node_bulk', properties: { distinct_id: U, i, $insert_id: `node-bulk-${i}` } });
  }
  await call('track_batch(120)', (cb) => mp.track_batch(bulk, cb));

  // import (GET /import with the secret as basic auth) and import_batch.
  await call('import', (cb) => mpImport.import('node_imported', new Date(BASE - 200 * DAY), {
    distinct_id: U, $insert_id: 'node-imp-0001', source: 'backfill',
  }, cb));
  await call('import_batch', (cb) => mpImport.import_batch([
    { event: 'node_imported_batch', properties: { distinct_id: U, $insert_id: 'node-impb-0001', time: new Date(BASE - 100 * DAY) } },
    { event: 'node_imported_batch', properties: { distinct_id: U, $insert_id: 'node-impb-0002', time: Math.floor((BASE - 101 * DAY) / 1000) } },
    { event: 'node_imported_batch', properties: { distinct_id: U, $insert_id: 'node-impb-0003', time: BASE - 102 * DAY } },
  ], cb));

  // people
  await call('people.set', (cb) => mp.people.set(U, { $email: 'node@example.com', plan: 'pro', motto: 'to the moon 🚀' }, cb));
  await call('people.set($ignore_time)', (cb) => mp.people.set(U, 'last_seen_via', 'cron', { $ignore_time: true }, cb));
  await call('people.set_once', (cb) => mp.people.set_once(U, 'first_seen', '2024-01-01', cb));
  await call('people.increment', (cb) => mp.people.increment(U, 'logins', 2, cb));
  await call('people.append', (cb) => mp.people.append(U, 'tags', 'beta', cb));
  await call('people.union', (cb) => mp.people.union(U, { plans: ['free', 'pro'] }, cb));
  await call('people.remove', (cb) => mp.people.remove(U, { tags: 'alpha' }, cb));
  await call('people.unset', (cb) => mp.people.unset(U, 'old_prop', cb));
  await call('people.track_charge', (cb) => mp.people.track_charge(U, 12.5, { sku: 'sku-1' }, cb));
  await call('people.delete_user', (cb) => mp.people.delete_user('node-user-2', cb));

  // groups and identity
  await call('groups.set', (cb) => mp.groups.set('company', 'acme-inc', { name: 'Acme', employees: 50 }, cb));
  await call('alias', (cb) => mp.alias(U, 'node-alias-1', cb));

  process.stdout.write(JSON.stringify({ results }) + '\n');
})().catch((e) => {
  console.error('node_sdk.js:', e && e.stack || e);
  process.exit(1);
});
