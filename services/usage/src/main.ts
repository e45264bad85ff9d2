// Composition root of the usage service process.
import { runServiceMain } from '@billing/kit/service-main';
import { usageService } from './definition.ts';

await runServiceMain(usageService);
