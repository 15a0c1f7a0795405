#!/usr/bin/env bash
# The book example end to end (issue: Foundation): a one-shot load gives
# exactly the three documents; then with a producer and a consumer running,
# every kind of change reaches the index through pgoutput -> Redis -> _bulk.
. "$(dirname "$0")/lib.sh"

new_db book >/dev/null
index=$(unique_name book)
psql_q <"$PGS_ROOT/tests/fixtures/book.sql" >/dev/null
schema=$PGS_STACK_DIR/$index.json
jq --arg db "$PGDATABASE" --arg ix "$index" '.[0].database = $db | .[0].index = $ix' \
    "$PGS_ROOT/schemas/book.json" >"$schema"

# canonical form of a document: keys sorted, compact
doc() { es_doc "$index" "$1" | jq -cS .; }

# 1. one-shot load
if pgsync --config "$schema" --quiet >"$PGS_STACK_DIR/logs/$index-load.log" 2>&1; then
    pass "pgsync one-shot exits 0"
else
    fail "pgsync one-shot exits 0" "$(tail -5 "$PGS_STACK_DIR/logs/$index-load.log")"
fi
check_eq "one-shot load: exactly the three books" \
    "9781471331435 9785811243570 9788374950978" "$(es_ids "$index" | xargs)"
check_eq "Kafka on the Shore document" \
    '{"authors":["Haruki Murakami","Philip Gabriel"],"description":"Kafka on the Shore is a 2002 novel by Japanese author Haruki Murakami.","isbn":"9788374950978","title":"Kafka on the Shore"}' \
    "$(doc 9788374950978)"
check_eq "1984 document" \
    '{"authors":["George Orwell"],"description":"1984 was George Orwell'"'"'s chilling prophecy about the dystopian future.","isbn":"9781471331435","title":"1984"}' \
    "$(doc 9781471331435)"
check_eq "Charlie document" \
    '{"authors":["Roald Dahl"],"description":"Willy Wonka'"'"'s famous chocolate factory is opening at last!","isbn":"9785811243570","title":"Charlie and the Chocolate Factory"}' \
    "$(doc 9785811243570)"

# 2. change capture
start_bg producer pgsync-producer --config "$schema"
start_bg consumer pgsync-consumer --config "$schema"

authors_of() { es_doc "$index" "$1" | jq -c .authors; }
title_of() { es_doc "$index" "$1" | jq -r .title; }
# predicates for wait_until, which re-runs them (a "$(...)" argument would be read once)
authors_are() { [ "$(authors_of "$1")" = "$2" ]; }
title_is() { [ "$(title_of "$1")" = "$2" ]; }

# an author who writes two books: renaming reaches both documents
psql_q "INSERT INTO book_author (book_isbn, author_id) VALUES ('9781471331435', 2)"
if wait_until 20 authors_are 9781471331435 '["George Orwell","Haruki Murakami"]'; then
    pass "adding a book_author row adds the name"
else
    fail "adding a book_author row adds the name" "got $(authors_of 9781471331435)"
fi
psql_q "UPDATE author SET name = 'Haruki Murakami (村上春樹)' WHERE id = 2"
if wait_until 20 authors_are 9788374950978 '["Haruki Murakami (村上春樹)","Philip Gabriel"]' &&
    wait_until 5 authors_are 9781471331435 '["George Orwell","Haruki Murakami (村上春樹)"]'; then
    pass "renaming an author changes every book that lists them"
else
    fail "renaming an author changes every book that lists them" \
        "got $(authors_of 9788374950978) and $(authors_of 9781471331435)"
fi
check_eq "the rename leaves other books alone" '["Roald Dahl"]' "$(authors_of 9785811243570)"

psql_q "INSERT INTO book (isbn, title, description) VALUES ('9780099448792', 'Norwegian Wood', 'A novel.');
        INSERT INTO book_author (book_isbn, author_id) VALUES ('9780099448792', 2)"
if wait_until 20 authors_are 9780099448792 '["Haruki Murakami (村上春樹)"]'; then
    pass "inserting a book adds a document"
else
    fail "inserting a book adds a document" "got '$(es_doc "$index" 9780099448792)'"
fi

psql_q "UPDATE book SET title = 'Nineteen Eighty-Four' WHERE isbn = '9781471331435'"
if wait_until 20 title_is 9781471331435 "Nineteen Eighty-Four"; then
    pass "updating a book's title re-indexes it"
else
    fail "updating a book's title re-indexes it" "got $(title_of 9781471331435)"
fi

psql_q "DELETE FROM book_author WHERE book_isbn = '9788374950978' AND author_id = 3"
if wait_until 20 authors_are 9788374950978 '["Haruki Murakami (村上春樹)"]'; then
    pass "deleting a book_author row removes the name"
else
    fail "deleting a book_author row removes the name" "got $(authors_of 9788374950978)"
fi

psql_q "DELETE FROM book WHERE isbn = '9785811243570'"
if wait_until 20 bash -c "! curl -sf '$ELASTICSEARCH_URL/$index/_doc/9785811243570' >/dev/null"; then
    pass "deleting a book removes its document"
else
    fail "deleting a book removes its document" "still there"
fi
check_eq "final set of documents" "9780099448792 9781471331435 9788374950978" \
    "$(es_ids "$index" | xargs)"

# the stream path, not a shortcut: records went through the consumer group
pending=$(redis_q XPENDING "pgsync:{$index}:changes" pgsync | head -1)
length=$(redis_q XLEN "pgsync:{$index}:changes")
if [ "${length:-0}" -ge 8 ] && [ "$pending" = "0" ]; then
    pass "changes went through the Redis stream and were all acknowledged"
else
    fail "changes went through the Redis stream and were all acknowledged" \
        "length=$length pending=$pending"
fi

if stop_bg producer && stop_bg consumer; then
    pass "producer and consumer stop cleanly on SIGTERM"
else
    fail "producer and consumer stop cleanly on SIGTERM" "non-zero exit"
fi
pgsync-bootstrap --config "$schema" --teardown >/dev/null 2>&1 ||
    fail "teardown" "pgsync-bootstrap --teardown failed"
check_eq "teardown removes the slot" "0" \
    "$(psql_q "SELECT count(*) FROM pg_replication_slots WHERE database = current_database()")"
