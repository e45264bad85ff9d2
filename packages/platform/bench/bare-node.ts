// The at-rest benchmark's first baseline: a Node process that loads nothing. Like a service it is a TypeScript
// file, so it carries the cost of type stripping too; it says it is ready on stdout and waits to be stopped.
process.stdout.write('ready\n');
setInterval(() => {}, 60_000);
