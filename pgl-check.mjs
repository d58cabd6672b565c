import { PGlite } from '@electric-sql/pglite';
let t=Date.now(); const db = new PGlite(); await db.waitReady; console.log('mem init', Date.now()-t);
await db.exec('create table x(a int8, b timestamptz, c jsonb); insert into x values (5, now(), \'{"b":1,"a":2}\')');
console.log((await db.query('select *, count(*) over () n, sha256(\'abc\'::bytea) h from x')).rows);
t=Date.now(); const dump = await db.dumpDataDir('none'); console.log('dump', Date.now()-t, dump.size);
t=Date.now(); const db2 = new PGlite({loadDataDir: dump}); await db2.waitReady; console.log('load', Date.now()-t);
console.log((await db2.query('select count(*) from x')).rows);
