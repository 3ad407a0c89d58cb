"""Every route module's routes are served by the application, as declared (app/api/router.py)."""

import importlib
import pkgutil

import pytest
from fastapi import APIRouter, FastAPI, WebSocket
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

import app.api.routes as routes_package
from app.api.router import ROUTE_OPTIONS, add_routes, routers


def test_every_route_of_every_route_module_is_served(client: TestClient) -> None:
    # A module added under app/api/routes/ and forgotten in app/api/router.py answers 404 in production.
    names = [m.name for m in pkgutil.iter_modules(routes_package.__path__)]
    modules = [importlib.import_module(f"app.api.routes.{name}") for name in names]
    declared = {
        (route.path, method)
        for module in modules
        if isinstance(getattr(module, "router", None), APIRouter)
        for route in module.router.routes
        if isinstance(route, APIRoute)
        for method in route.methods or ()
    }
    assert declared, "no route module found"
    for path, method in sorted(declared):
        response = client.request(method, path)
        assert response.status_code not in (404, 405), f"{method} {path}: {response.status_code}"


def module_routes() -> list[APIRoute]:
    return [route for router in routers for route in router.routes if isinstance(route, APIRoute)]


def test_the_routes_are_declared_on_the_application_itself(app: FastAPI) -> None:
    # app/api/router.py: no included-router layer to match through on each request (issue 16).
    # Only routes (the service's, and FastAPI's /docs and /openapi.json), no included router.
    assert all(isinstance(route, Route) for route in app.router.routes), app.router.routes
    served = [route for route in app.router.routes if isinstance(route, APIRoute)]
    assert {route.path for route in served} == {route.path for route in module_routes()}
    for route in served:
        assert route.dependency_overrides_provider is app, route.path


def test_the_application_serves_the_same_api_as_the_routers_included(app: FastAPI) -> None:
    # Every option a route module gives its routes is kept: the schema says the same as the
    # routers included the way FastAPI's docs show, and so does each option the schema omits.
    included = FastAPI(title=app.title, version=app.version)
    for router in routers:
        included.include_router(router)
    assert app.openapi() == included.openapi()
    declared = {(route.path, frozenset(route.methods or ())): route for route in module_routes()}
    for route in app.router.routes:
        if isinstance(route, APIRoute):
            original = declared[(route.path, frozenset(route.methods or ()))]
            assert route.endpoint is original.endpoint
            for name in ROUTE_OPTIONS:
                expected, actual = getattr(original, name), getattr(route, name)
                if isinstance(expected, DefaultPlaceholder) and not isinstance(actual, DefaultPlaceholder):
                    expected = getattr(app.router, name)  # left to the enclosing router: the application's
                assert actual == expected, (route.path, name)


def test_a_json_body_sent_as_another_content_type_is_refused(client: TestClient) -> None:
    # strict_content_type, the one option a module leaves to the application (True, FastAPI's default).
    body = '{"username": "someone", "password": "correct-horse-battery"}'
    response = client.post("/users", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 422, response.text


def test_a_route_that_is_not_a_path_operation_is_refused() -> None:
    router = APIRouter()

    @router.websocket("/stream")
    async def stream(websocket: WebSocket) -> None:
        await websocket.close()

    with pytest.raises(TypeError, match="not a path operation"):
        add_routes(FastAPI(), (router,))
