"""The service's routers, each included in the application on its own (app/main.py).

Since FastAPI 0.137 an included router stays a node of its own: the application's router asks
each one in turn whether it has the path, and the one that does matches it again to dispatch.
Hence one level (not a router of routers, which doubles that), and the router of the
authenticated routes first: every `GET /users/me` is matched there before the probes' and the
login's routers are tried. In a profile of `GET /users/me` (issue 16, bench/run.py `me_rps`) the
included routers took 7% of its CPU as a router of routers, 5.5% one level deep with the probes
first, 3.9% in this order; a route declared with `@app.get` 1.9%.

Declaring each module's routes again on the application would save those 2 points, but would
have to carry by hand what `include_router` carries (the router's lifespan and startup handlers,
its form limits, streaming item types), and follow it through each FastAPI release: not done.
"""

from app.api.routes import auth, health, users

routers = (users.router, auth.router, health.router)
