-- bench/sql/setup.sql: what the benchmark adds to the data of gen_books.sql.
-- psql -v authors=M -v fanout=F -f bench/sql/setup.sql
--  * the fan-out author (id M+1), linked to the first F books: renaming it
--    changes F documents (scenario 3);
--  * the samples' author (id M+2), whom the change stream never renames:
--    the latency samples link to it, so that a sample's document is written
--    only when its own insert is processed (a rename of a shared author,
--    processed earlier, would otherwise index it ahead of its turn);
--  * the sequence that numbers the books the change stream inserts
--    (isbns from 5000000000000, far from the generated ones).
\set ON_ERROR_STOP on
INSERT INTO author (id, name) VALUES (:authors + 1, 'Fanout Writer');
INSERT INTO book_author (book_isbn, author_id)
SELECT lpad(g::text, 13, '0'), :authors + 1 FROM generate_series(1, :fanout) g;
INSERT INTO author (id, name) VALUES (:authors + 2, 'Sample Writer');
CREATE SEQUENCE IF NOT EXISTS bench_isbn START 5000000000000;
ANALYZE book; ANALYZE author; ANALYZE book_author;
CHECKPOINT;
