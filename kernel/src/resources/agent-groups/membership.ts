import type { Knex } from 'knex';
import { hasCriteria, matchesAgent, type AgentFacts, type GroupCriteria } from './group-matching.js';

export type Membership = 'dynamic' | 'include';

/**
 * The agents in a group: those its criteria match, plus manual includes, minus
 * manual excludes (an exclude always wins). Criteria are evaluated in code, not
 * SQL, so one rule (matchesAgent) decides membership everywhere it is needed.
 */
export async function resolveGroupMembers(db: Knex | Knex.Transaction, group: GroupCriteria & { id: string }): Promise<Map<string, Membership>> {
  const manual = (await db('agent_group_members').where({ agent_group_id: group.id }).select('agent_id', 'membership_type')) as
    { agent_id: string; membership_type: 'include' | 'exclude' }[];
  const members = new Map<string, Membership>();
  if (hasCriteria(group)) {
    const q = db('agents').select('id', 'os', 'architecture', 'ip_address', 'version');
    // Narrow in SQL where it is the same test; the CIDR and version rules run in code.
    if (group.match_os) q.whereRaw('lower(os) = lower(?)', [group.match_os.trim()]);
    if (group.match_architecture) q.whereRaw('lower(architecture) = lower(?)', [group.match_architecture.trim()]);
    const agents = (await q) as (AgentFacts & { id: string })[];
    for (const a of agents) if (matchesAgent(group, a)) members.set(a.id, 'dynamic');
  }
  for (const m of manual) if (m.membership_type === 'include') members.set(m.agent_id, 'include');
  for (const m of manual) if (m.membership_type === 'exclude') members.delete(m.agent_id);
  return members;
}
