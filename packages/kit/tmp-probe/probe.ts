import { CatalogService } from '@billing/proto/billing/catalog/v1/catalog_service_pb';
import { createLogger } from '../src/log.ts';
import { errorInterceptor, Violations, NotFoundError } from '../src/errors.ts';
import { startServer } from '../src/server.ts';
const logger = createLogger({ service: 'probe', level: 'debug' });
const s = await startServer({ host: '127.0.0.1', port: 0, services: [CatalogService], logger, interceptors: [errorInterceptor('billing.catalog', logger)], routes(r) {
  r.service(CatalogService, { getFeature: (req) => {
    if (req.key === '') new Violations().add('key', 'required').throwIfAny();
    if (req.key === 'boom') throw new Error('secret sk_live_abc123 leaked');
    if (req.key === 'nope') throw new NotFoundError('FEATURE_NOT_FOUND', 'no feature');
    return { feature: { key: req.key, name: 'SSO' } }; } });
}});
console.log('PORT', s.port);
setTimeout(() => s.shutdown({ graceMs: 1000 }), Number(process.env.LIFE ?? 15000));
