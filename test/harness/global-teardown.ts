// Jest global teardown: stops the containers global-setup.ts started (none on machines without Docker).
import { startedContainers } from './global-setup.ts';

export default async function globalTeardown(): Promise<void> {
  await Promise.all(
    startedContainers()
      .splice(0)
      .map((container) => container.stop()),
  );
}
