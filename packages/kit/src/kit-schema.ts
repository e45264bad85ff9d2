// The kit's own tables, created in every service's database before the service's migrations.
import type { SqlMigration } from './migration.ts';

/** Migrations of the tables the kit itself uses: idempotency keys, outbox, processed and parked events. */
export const KIT_MIGRATIONS: readonly SqlMigration[] = [
  {
    name: '0000_kit',
    statements: [
      // One row per (RPC, request_id): the fingerprint of the request and the encoded first answer.
      `create table idempotency_key (
        scope text not null,
        request_id text not null,
        fingerprint text not null,
        response bytea,
        created_at timestamptz not null default now(),
        primary key (scope, request_id)
      )`,
      // Events written in the same transaction as the change that caused them; the relay publishes them in
      // position order and stamps published_at. Rows stay after publication so that an operator can replay.
      `create table outbox_event (
        position bigserial primary key,
        id text not null unique,
        subject text not null,
        type text not null,
        schema text not null,
        aggregate_id text not null,
        aggregate_seq bigint not null,
        occurred_at timestamptz not null,
        recorded_at timestamptz not null default now(),
        producer text not null,
        request_id text,
        traceparent text,
        payload bytea not null,
        published_at timestamptz,
        unique (aggregate_id, aggregate_seq)
      )`,
      'create index outbox_event_unpublished on outbox_event (position) where published_at is null',
      // Event ids a consumer has applied, recorded in the same transaction as the effect, kept forever.
      `create table processed_event (
        consumer text not null,
        event_id text not null,
        processed_at timestamptz not null default now(),
        primary key (consumer, event_id)
      )`,
      // Messages a consumer gave up on after its attempts, with the error, for an operator to see and replay.
      `create table parked_event (
        consumer text not null,
        event_id text not null,
        subject text not null,
        headers jsonb not null,
        payload bytea not null,
        error text not null,
        attempts integer not null,
        parked_at timestamptz not null default now(),
        replayed_at timestamptz,
        primary key (consumer, event_id)
      )`,
    ],
  },
];
