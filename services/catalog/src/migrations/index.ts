// The catalog's schema history, oldest first. Never edit a released migration: add a new one.
import type { SqlMigration } from '@billing/kit/migration';

/** Every migration of the catalog database. */
export const CATALOG_MIGRATIONS: readonly SqlMigration[] = [
  {
    name: '0001_catalog',
    statements: [
      `create table feature (
        key text primary key,
        body jsonb not null,
        archived boolean not null default false,
        created_at timestamptz not null,
        updated_at timestamptz not null
      )`,
      `create table meter (
        key text primary key,
        body jsonb not null,
        archived boolean not null default false,
        created_at timestamptz not null
      )`,
      `create table plan (
        key text primary key,
        status text not null,
        latest_version integer not null default 0,
        draft_version integer not null default 0,
        created_at timestamptz not null,
        archived_at timestamptz
      )`,
      `create table plan_version (
        plan_key text not null references plan (key),
        version integer not null,
        status text not null,
        spec jsonb not null,
        published_at timestamptz,
        updated_at timestamptz not null,
        primary key (plan_key, version)
      )`,
      `create table add_on (
        key text primary key,
        body jsonb not null,
        archived boolean not null default false,
        created_at timestamptz not null,
        updated_at timestamptz not null
      )`,
    ],
  },
];
