-- The book example at scale: :books books, :authors authors, about 1.5
-- authors per book through book_author, titles and descriptions of
-- realistic sizes (a title of 3-8 words, a description of ~300-700 bytes).
-- psql -v books=1000000 -v authors=300000 -f bench/gen_books.sql
\set ON_ERROR_STOP on
CREATE TABLE IF NOT EXISTS book (
    isbn varchar(13) PRIMARY KEY,
    title text NOT NULL,
    description text
);
CREATE TABLE IF NOT EXISTS author (
    id integer PRIMARY KEY,
    name text NOT NULL
);
CREATE TABLE IF NOT EXISTS book_author (
    id serial PRIMARY KEY,
    book_isbn varchar(13) NOT NULL REFERENCES book (isbn) ON DELETE CASCADE,
    author_id integer NOT NULL REFERENCES author (id) ON DELETE CASCADE
);

CREATE TEMP TABLE words AS
SELECT w, row_number() OVER () - 1 AS i FROM unnest(string_to_array(
 'the of and a to in is you that it he was for on are as with his they at be this have from or one had by word but not what all were we when your can said there use an each which she do how their if will up other about out many then them these so some her would make like him into time has look two more write go see number no way could people my than first water been call who oil its now find long down day did get come made may part over new sound take only little work know place year live me back give most very after thing our just name good sentence man think say great where help through much before line right too mean old any same tell boy follow came want show also around form three small set put end does another well large must big even such because turn here why ask went men read need land different home us move try kind hand picture again change off play spell air away animal house point page letter mother answer found study still learn should america world', ' ')) AS w;

SELECT count(*) AS nwords FROM words \gset
CREATE INDEX ON words (i);

INSERT INTO author (id, name)
SELECT g, initcap((SELECT w FROM words WHERE i = (g * 7) % :nwords)) || ' ' ||
          initcap((SELECT w FROM words WHERE i = (g * 13 + 5) % :nwords)) || ' ' || g
FROM generate_series(1, :authors) g;

INSERT INTO book (isbn, title, description)
SELECT lpad(g::text, 13, '0'),
       initcap(array_to_string(ARRAY(SELECT w FROM words WHERE i IN
           (SELECT (g::bigint * k * 31 + k) % :nwords FROM generate_series(1, 3 + g % 6) k)), ' ')),
       array_to_string(ARRAY(SELECT w FROM words WHERE i IN
           (SELECT (g::bigint * k * 17 + k * 3) % :nwords FROM generate_series(1, 60 + g % 60) k)), ' ')
FROM generate_series(1, :books) g;

-- every book one author, every other book a second one: 1.5 on average
INSERT INTO book_author (book_isbn, author_id)
SELECT lpad(g::text, 13, '0'), 1 + (g::bigint * 7919) % :authors FROM generate_series(1, :books) g;
INSERT INTO book_author (book_isbn, author_id)
SELECT lpad(g::text, 13, '0'), 1 + (g::bigint * 104729 + 13) % :authors
FROM generate_series(1, :books, 2) g;
CREATE INDEX IF NOT EXISTS book_author_book_isbn ON book_author (book_isbn);
CREATE INDEX IF NOT EXISTS book_author_author_id ON book_author (author_id);
ANALYZE book; ANALYZE author; ANALYZE book_author;
