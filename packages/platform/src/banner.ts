// What `pnpm start` prints once every service runs: where each one listens, and commands to try. They are the
// README's own (a test holds them to it), and each may be run again, in any order and after a restart: a
// mutation is sent with the same request id and the same fields every time, so a repeat is an idempotent replay.

/** A running service, as the banner lists it. */
export interface ListedService {
  /** Its name (`catalog`). */
  name: string;
  /** The port it listens on. */
  port: number;
}

/** The CLI's default catalog URL, which the banner's CLI example names only when the catalog is elsewhere. */
const CLI_DEFAULT_CATALOG_PORT = 7101;

/** The text printed at start: the services with their URLs, and commands to try against them. */
export function startBanner(services: readonly ListedService[]): string {
  const portOf = (name: string) => {
    const service = services.find((s) => s.name === name);
    if (!service) throw new Error(`the banner's examples call the ${name} service, which is not running`);
    return service.port;
  };
  const catalog = `http://127.0.0.1:${portOf('catalog')}`;
  const cliCatalog = portOf('catalog') === CLI_DEFAULT_CATALOG_PORT ? '' : `BILLING_CATALOG_URL=${catalog} `;
  const json = "curl -s -H 'content-type: application/json'";
  return [
    '',
    'The billing platform is running:',
    ...services.map((s) => `  ${s.name.padEnd(13)} http://127.0.0.1:${s.port}`),
    '',
    'Try it (reflection, no schema files needed; the README shows more, subscriptions and usage too):',
    `  pnpm exec buf curl --protocol grpc --http2-prior-knowledge --list-services ${catalog}`,
    `  pnpm exec buf curl --protocol grpc --http2-prior-knowledge -d '{"planKey":"team"}' ${catalog}/billing.catalog.v1.CatalogService/GetPlanVersion`,
    `  ${json} -d '{}' ${catalog}/billing.catalog.v1.CatalogService/ListPlans`,
    `  ${cliCatalog}pnpm billing catalog apply examples/catalog.yaml --dry-run`,
    `  ${json} -d '{"requestId":"create-customer-acme","customer":{"externalId":"acme","name":"Acme","billing":{"currencyCode":"USD"}}}' http://127.0.0.1:${portOf('subscription')}/billing.subscription.v1.CustomerService/CreateCustomer`,
    '',
    'Stop with Ctrl-C.',
    '',
  ].join('\n');
}
