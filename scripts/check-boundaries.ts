// `pnpm lint` runs this: services share contracts only (@billing/proto, and the kit and money packages),
// so no file under a service's src/ imports another service's package or reaches into its folder, and no
// shared package imports a service. Tests may start another service through its package's one export.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The workspace to check: this one, or the folder given as the first argument.
const root = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const servicesDir = join(root, 'services');
const services = readdirSync(servicesDir).filter((name) => statSync(join(servicesDir, name)).isDirectory());
const packageOf = new Map(
  services.map((name) => {
    const manifest = JSON.parse(readFileSync(join(servicesDir, name, 'package.json'), 'utf8')) as { name: string };
    return [manifest.name, name];
  }),
);

/** Every TypeScript file under a folder, node_modules and generated code left out. */
function sources(dir: string): string[] {
  if (!statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' || entry.name === 'gen' ? [] : sources(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

// Static imports, re-exports and dynamic imports: the module specifier of each.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"]([^'"]+)['"]/g;

/** The service a module specifier of `file` leads into, if any. */
function serviceImported(file: string, specifier: string): string | undefined {
  if (specifier.startsWith('.')) {
    const target = relative(servicesDir, resolve(dirname(file), specifier));
    return target.startsWith('..') ? undefined : target.split(/[\\/]/)[0];
  }
  const name = specifier.split('/').slice(0, 2).join('/');
  return packageOf.get(name);
}

const problems: string[] = [];
const check = (owner: string | undefined, dir: string) => {
  for (const file of sources(dir)) {
    for (const match of readFileSync(file, 'utf8').matchAll(SPECIFIER)) {
      const specifier = match[1] ?? '';
      const imported = serviceImported(file, specifier);
      if (imported && imported !== owner) {
        problems.push(`${relative(root, file)}: imports ${specifier} (service ${imported}); share contracts only`);
      }
    }
  }
};
for (const service of services) check(service, join(servicesDir, service, 'src'));
for (const shared of ['kit', 'money', 'proto']) check(undefined, join(root, 'packages', shared));

if (problems.length > 0) {
  for (const problem of problems) console.error(problem);
  process.exit(1);
}
