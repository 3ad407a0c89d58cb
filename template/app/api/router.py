"""The service's routes, declared on the application's own router (app/main.py `create_app`).

Each module under app/api/routes/ keeps its `APIRouter`, as FastAPI's docs write them. They are
not included with `app.include_router`: since FastAPI 0.137 an included router stays a node of
its own, which matches and dispatches every request a second time. In a profile of
`GET /users/me` that layer took 5% of the CPU, for a grouping the application does not use
(issue 16, bench/run.py `me_rps`). `add_routes` declares each route again on the application, with
every option the module gave it, as `@app.get(...)` would have: one level of routing, and the
dependencies see `app.dependency_overrides` (the application is their overrides provider).
"""

import inspect

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

from app.api.routes import auth, health, users

routers = (health.router, auth.router, users.router)

# What `add_api_route` accepts beyond the path and the endpoint, each kept by APIRoute under the
# same name, already merged with its router's prefix, tags, dependencies and responses. Read from
# FastAPI's own signature, so that an option a newer FastAPI adds is carried over too, or, if
# APIRoute does not keep it under that name, fails at startup rather than being dropped.
ROUTE_OPTIONS = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in {"self", "path", "endpoint", "route_class_override"}
)


def add_routes(app: FastAPI, routers: tuple[APIRouter, ...] = routers) -> None:
    for router in routers:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                # A websocket, a mount or an included router: declared some other way, and not
                # used by this service; include the router as FastAPI's docs do instead.
                raise TypeError(f"{route!r} in a router of app/api/routes/ is not a path operation")
            options = {name: getattr(route, name) for name in ROUTE_OPTIONS}
            app.router.add_api_route(route.path, route.endpoint, route_class_override=type(route), **options)
