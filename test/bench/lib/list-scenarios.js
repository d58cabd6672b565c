import { benchProfileId } from './seed.js';

export const CURSOR_PAGES = 100;
export const CURSOR_PAGE_SIZE = 100;

/** What the list bench asks GET /api/v1/certificates, and the knex baseline, for. */
export function listScenarios(now, rows) {
  const expiresBefore = new Date(now + 180 * 86_400_000).toISOString();
  // Three quarters into the table: page 1500 of 50 for 100,000 rows.
  const deepPage = Math.max(1, Math.floor((rows * 0.75) / 50));
  return [
    { name: 'page1', what: 'page 1, per_page=50, default sort -created_at', query: { per_page: '50' } },
    { name: 'deep_page', what: `page=${deepPage}, per_page=50 (OFFSET ${(deepPage - 1) * 50})`, query: { page: String(deepPage), per_page: '50' } },
    { name: 'filtered', what: 'status=Active & profile_id & expires_before=+180d', query: { status: 'Active', profile_id: benchProfileId(7), expires_before: expiresBefore } },
    { name: 'sort_expires', what: 'sort=-expires_at, per_page=50', query: { sort: '-expires_at', per_page: '50' } },
    { name: 'fields', what: 'fields=id,common_name,status, per_page=50', query: { fields: 'id,common_name,status', per_page: '50' } },
    { name: 'cursor', what: `cursor walk, ${CURSOR_PAGES} pages of page_size=${CURSOR_PAGE_SIZE}`, cursor: true },
  ];
}

/**
 * The operation for one scenario; `fetchList(query)` returns a list envelope. Cursor
 * scenarios keep one walk per worker: each call fetches the next page, and a walk
 * starts over after CURSOR_PAGES pages.
 */
export function scenarioOp(scenario, fetchList) {
  if (!scenario.cursor) return () => fetchList(scenario.query);
  const walks = new Map();
  return async (worker) => {
    const walk = walks.get(worker) ?? { cursor: null, pages: 0 };
    walks.set(worker, walk);
    const query = { page_size: String(CURSOR_PAGE_SIZE), ...(walk.cursor ? { cursor: walk.cursor } : {}) };
    const page = await fetchList(query);
    walk.pages += 1;
    walk.cursor = walk.pages < CURSOR_PAGES ? page.next_cursor : null;
    if (!walk.cursor) walk.pages = 0;
  };
}
