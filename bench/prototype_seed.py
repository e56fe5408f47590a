"""Helper of bench/prototype.sh: schema, data and ASGI entry point for the FastAPI prototype.

Runs in the prototype's virtualenv, with the prototype's backend/ directory as working
directory and on PYTHONPATH (its package is `app`), DATABASE_URL naming the database:

  python bench/prototype_seed.py --users 1000 --events 2000 --conversations 200
      creates the schema, seeds it, prints "<bench user id> <bench conversation id>"
  uvicorn --app-dir bench prototype_seed:app ...
      the prototype's app, on DATABASE_URL

The prototype's app/database.py builds its engine from a hard-coded URL (host `db`, database
`mobile_musician`, from its docker-compose set-up) instead of settings.DATABASE_URL, so both
entries rebind its session factory to DATABASE_URL before anything opens a connection (with a
larger pool if PROTOTYPE_POOL_SIZE is set, see _point_at_database). Nothing else of the
prototype is changed.

The data mirrors `tunelink seed` (src/seed): musicians named musician000000…, one password hash
for all (bcrypt through the prototype's own passlib context, hashed once), events in the same
cities from 30 days ago to 180 days ahead, conversations of 2 to 8 members with 0 to
20 messages each; plus, as bench/rest.sh makes, two accounts of our own (`bencher`,
`benchmate`, password SEED_PASSWORD) and a conversation between them with 100 messages.
"""

import argparse
import os
import random
import uuid
from datetime import datetime, timedelta

SEED_PASSWORD = "tunelink-seed"
# Names as in src/seed/data.rs (the prototype stores no coordinates: a city is only text).
CITIES = [("Paris", 40), ("Marseille", 12), ("Lyon", 12), ("Toulouse", 9), ("Nice", 6),
          ("Nantes", 7), ("Montpellier", 6), ("Strasbourg", 6), ("Bordeaux", 7), ("Lille", 7),
          ("Rennes", 5), ("Grenoble", 4), ("Tours", 3), ("Rouen", 3), ("Dijon", 3)]
EVENT_TYPES = ["jam", "concert", "rehearsal", "open_mic", "workshop", "other"]
GENRES = ["jazz", "rock", "blues", "funk", "pop", "metal", "folk", "classical", "hip-hop"]
STREETS = ["rue de la Musique", "place du Marché", "quai des Artistes", "avenue Django Reinhardt",
           "rue Nina Simone", "boulevard des Orgues", "impasse du Tambour", "rue du Conservatoire"]


def _point_at_database():
    """Rebinds the prototype's engine and session factory to DATABASE_URL; returns the engine.

    PROTOTYPE_POOL_SIZE=N makes the pool N connections per process (no overflow); unset, it is
    the prototype's (create_engine(url): 5 connections + 10 overflow, then a 30 s wait). Under
    more concurrent requests than that, the prototype stalls: a request keeps its connection
    (in its session, closed by get_db after the answer is sent) while FastAPI validates the
    answer of a sync endpoint in the thread pool (40 threads), and the threads are all taken by
    endpoints waiting for a connection, until the pool's 30 s timeout answers 500 ("QueuePool
    limit of size 5 overflow 10 reached")."""
    import sqlalchemy
    import app.database as database

    size = os.environ.get("PROTOTYPE_POOL_SIZE")
    options = dict(pool_size=int(size), max_overflow=0) if size else {}
    database.engine = sqlalchemy.create_engine(os.environ["DATABASE_URL"], **options)
    database.SessionLocal.configure(bind=database.engine)
    return database.engine


def __getattr__(name):  # `prototype_seed:app` for uvicorn, in each worker
    if name != "app":
        raise AttributeError(name)
    _point_at_database()
    from app.main import app

    return app


def create_schema(engine):
    """Base.metadata.create_all: the prototype's alembic history cannot build a database from
    scratch (its first revision adds a column to a `users` table that no revision creates).
    Its models sit on two declarative bases: users and events on app.models.base.Base,
    conversations, participants and messages on app.database.Base, whose foreign keys name
    `users`; that table is reflected into the second metadata so that they resolve."""
    import sqlalchemy
    import app.models  # noqa: F401  (registers every model)
    from app.database import Base as ChatBase
    from app.models.base import Base as ModelBase

    ModelBase.metadata.create_all(engine)
    sqlalchemy.Table("users", ChatBase.metadata, autoload_with=engine)
    ChatBase.metadata.create_all(engine)


def seed(engine, users, events, conversations, rng):
    from sqlalchemy import insert, text
    from app.core.security import get_password_hash
    from app.models import Conversation, ConversationParticipant, Event, Message, User
    from app.models.conversation import ConversationType

    now = datetime.utcnow()
    password_hash = get_password_hash(SEED_PASSWORD)
    weights = [c[1] for c in CITIES]
    user_rows = []
    for i in range(users):
        user_rows.append(dict(id=uuid.UUID(int=rng.getrandbits(128), version=4),
                              username=f"musician{i:06}", email=f"musician{i:06}@seed.tunelink.test",
                              password_hash=password_hash, is_active=True,
                              created_at=now - timedelta(days=rng.randrange(1, 365))))
    ids = [u["id"] for u in user_rows]
    bencher, benchmate = uuid.uuid4(), uuid.uuid4()
    for uid, name in ((bencher, "bencher"), (benchmate, "benchmate")):
        user_rows.append(dict(id=uid, username=name, email=f"{name}@example.com",
                              password_hash=password_hash, is_active=True, created_at=now))

    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    event_rows = []
    for _ in range(events):
        city = rng.choices(CITIES, weights)[0]
        kind = rng.choice(EVENT_TYPES).replace("_", " ")
        event_rows.append(dict(
            id=uuid.UUID(int=rng.getrandbits(128), version=4),
            title=f"{kind} à {city[0]}",
            description=f"A {kind} in {city[0]}: bring your instrument, all levels welcome.",
            location=f"{rng.randrange(1, 200)} {rng.choice(STREETS)}, {city[0]}",
            event_date=day0 + timedelta(days=rng.randrange(-30, 180), hours=rng.randrange(10, 22),
                                        minutes=15 * rng.randrange(4)),
            created_at=now - timedelta(days=rng.randrange(1, 60)),
            tags=rng.sample(GENRES, rng.randint(1, 2)),
            organizer_id=rng.choice(ids)))

    conv_rows, member_rows, message_rows = [], [], []

    def conversation(members, name, kind, created, texts):
        cid = uuid.UUID(int=rng.getrandbits(128), version=4)
        conv_rows.append(dict(id=cid, name=name, type=kind, created_at=created))
        member_rows.extend(dict(user_id=m, conversation_id=cid, joined_at=created) for m in members)
        for seq, (author, body) in enumerate(texts, 1):
            message_rows.append(dict(id=uuid.UUID(int=rng.getrandbits(128), version=4),
                                     content=body, sender_id=author, conversation_id=cid,
                                     created_at=created + timedelta(minutes=7 * seq)))
        return cid

    for n in range(conversations):
        size = 2 if rng.random() < 0.7 else rng.randint(3, 8)
        members = rng.sample(ids, size)
        kind = ConversationType.PRIVATE if size == 2 else ConversationType.GROUP
        texts = [(rng.choice(members), f"Message {s} about the next rehearsal")
                 for s in range(1, rng.randint(0, 20) + 1)]
        conversation(members, f"Band #{n}" if size > 2 else "", kind,
                     now - timedelta(days=rng.randrange(1, 60)), texts)
    bench = conversation([bencher, benchmate], "bench", ConversationType.PRIVATE,
                         now - timedelta(days=1),
                         [(bencher, f"message {i}") for i in range(1, 101)])

    with engine.begin() as conn:
        conn.execute(insert(User), user_rows)
        conn.execute(insert(Event), event_rows)
        conn.execute(insert(Conversation), conv_rows)
        conn.execute(insert(ConversationParticipant), member_rows)
        conn.execute(insert(Message), message_rows)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM (ANALYZE)"))  # as `tunelink seed` does after its bulk load
    return bencher, bench, len(message_rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    engine = _point_at_database()
    create_schema(engine)
    bencher, conv, _ = seed(engine, args.users, args.events, args.conversations,
                            random.Random(args.seed))
    print(bencher, conv)


if __name__ == "__main__":
    main()
