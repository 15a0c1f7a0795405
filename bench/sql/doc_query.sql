-- bench/sql/doc_query.sql: the document query of schemas/book.json, written
-- out by hand. It is the query pgsync-c generates (common/sqlgen.c; copied
-- from PostgreSQL's statement log of a load: pgsync adds "WHERE n0.ctid >=
-- $1::tid AND n0.ctid < $2::tid" per range and reads it through a cursor).
-- bench/run times it with COPY (...) TO '/dev/null' and uses it to build
-- the engine's own _bulk files. The lines below the comments are one query,
-- without a semicolon.
SELECT n0."isbn"::text AS _id, json_build_object('isbn', n0."isbn", 'title', n0."title", 'description', n0."description", 'authors', (SELECT json_agg(n1."name" ORDER BY t1."id", n1."id") FROM "public"."book_author" t1 JOIN "public"."author" n1 ON n1."id" = t1."author_id" WHERE t1."book_isbn" = n0."isbn")) AS doc, n0."isbn"::text AS k0 FROM "public"."book" n0
