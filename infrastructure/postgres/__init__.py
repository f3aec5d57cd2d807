"""PostgreSQL adapters: event store, read models, definitions, activity queue, migrations.

Import from the modules (this package imports nothing, so `migrate` stays light). Build one
datastore per process, after migrating, and hand it to every adapter (one pool):

    migrate(url)                                        # .migrate
    datastore = build_datastore(url, pool_size=...)     # .datastore
    instances = PostgresInstanceStore(WaymarkApplication(datastore))
    definitions = PostgresDefinitionStore(datastore)
    queries = PostgresReadModelQueries(datastore)
    activities = PostgresActivityQueue(datastore)
    ...
    datastore.close()                                   # on shutdown
"""
