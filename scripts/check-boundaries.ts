// `pnpm lint` runs this: services share contracts only (@billing/proto, and the kit and money packages).
// - A service's source (src/) imports no other service, by package name or by path, and reaches outside its own
//   folder only through those shared packages; its manifest's dependencies name no other workspace package.
// - Its tests and benchmarks may start another service through that package's one export, never by path.
// - A shared package imports no service and depends on none.
// Every way a module is named counts: import and export ... from, import(), require(), createRequire()(),
// template literals without substitutions, relative and absolute paths and file: URLs.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

// The workspace to check: this one, or the folder given as the first argument.
const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const servicesDir = join(root, 'services');
const packagesDir = join(root, 'packages');
const SHARED = ['kit', 'money', 'proto'];
const isDir = (path: string) => statSync(path, { throwIfNoEntry: false })?.isDirectory() === true;

interface Manifest {
  name: string;
  dependencies?: Record<string, string>;
}
const manifestOf = (dir: string): Manifest => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Manifest;

const services = isDir(servicesDir) ? readdirSync(servicesDir).filter((name) => isDir(join(servicesDir, name))) : [];
const serviceOfPackage = new Map(services.map((name) => [manifestOf(join(servicesDir, name)).name, name]));

const SOURCE = /\.(?:[cm]?ts|tsx|[cm]?js|jsx)$/;

/** Every source file under a folder, node_modules and generated code left out. */
function sources(dir: string): string[] {
  if (!isDir(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'gen' ? [] : sources(path);
    return SOURCE.test(entry.name) ? [path] : [];
  });
}

// The module named by: `from '...'`, `import '...'`, `import('...')`, `require('...')`, `require.resolve('...')`,
// and a call on a call (`createRequire(url)('...')`); quotes or a template literal without substitutions.
const SPECIFIER =
  /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+|\brequire(?:\.resolve)?\s*\(\s*|\)\s*\(\s*)(['"`])([^'"`$]+)\1/g;

/** Where a module specifier of `file` leads: a path in the workspace, or a package name. */
function target(file: string, specifier: string): { path: string } | { name: string } {
  if (specifier.startsWith('file:')) return { path: fileURLToPath(specifier) };
  if (specifier.startsWith('.') || isAbsolute(specifier)) return { path: resolve(dirname(file), specifier) };
  const name = specifier.startsWith('@') ? specifier.split('/').slice(0, 2).join('/') : (specifier.split('/')[0] ?? '');
  return { name };
}

/** The service folder a path lies in, if any. */
function serviceAt(path: string): string | undefined {
  const inside = relative(servicesDir, path);
  return inside.startsWith('..') || isAbsolute(inside) ? undefined : inside.split(sep)[0];
}

/** Whether a package name is one of the workspace's own that a service's source may not use (not kit, money, proto). */
const isWorkspacePackage = (name: string) =>
  name.startsWith('@billing/') && !SHARED.some((shared) => name === `@billing/${shared}`);

const isShared = (path: string) => SHARED.some((name) => (path + sep).startsWith(join(packagesDir, name) + sep));

const problems: string[] = [];
const refuse = (file: string, specifier: string, why: string) =>
  problems.push(`${relative(root, file)}: imports ${specifier} (${why}); services share contracts only`);

/** Checks the files of `dir`, which belongs to `owner` (a service) or to a shared package (undefined). */
function checkFiles(dir: string, owner: string | undefined, kind: 'source' | 'tests') {
  for (const file of sources(dir)) {
    for (const match of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
      const specifier = match[2] ?? '';
      const to = target(file, specifier);
      if ('name' in to) {
        const service = serviceOfPackage.get(to.name);
        if (service && service !== owner && (kind === 'source' || specifier !== to.name)) {
          refuse(file, specifier, `service ${service}`);
        } else if (!service && owner !== undefined && kind === 'source' && isWorkspacePackage(to.name)) {
          refuse(file, specifier, 'a workspace package other than the shared ones');
        }
        continue;
      }
      const service = serviceAt(to.path);
      if (service !== undefined && service !== owner) refuse(file, specifier, `service ${service}`);
      else if (owner !== undefined && kind === 'source' && service === undefined && !isShared(to.path)) {
        refuse(file, specifier, 'outside the service and the shared packages');
      }
    }
  }
}

/** Checks that a manifest's dependencies name no workspace package but the shared ones. */
function checkManifest(dir: string) {
  for (const name of Object.keys(manifestOf(dir).dependencies ?? {})) {
    if (isWorkspacePackage(name)) {
      problems.push(`${relative(root, join(dir, 'package.json'))}: depends on ${name}; services share contracts only`);
    }
  }
}

for (const service of services) {
  const dir = join(servicesDir, service);
  checkFiles(join(dir, 'src'), service, 'source');
  checkFiles(join(dir, 'test'), service, 'tests');
  checkFiles(join(dir, 'bench'), service, 'tests');
  checkManifest(dir);
}
for (const shared of SHARED) {
  const dir = join(packagesDir, shared);
  checkFiles(dir, undefined, 'source');
  if (statSync(join(dir, 'package.json'), { throwIfNoEntry: false })) checkManifest(dir);
}

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
