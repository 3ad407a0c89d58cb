"""The service's routers, each included in the application on its own (app/main.py).

Not gathered under one `APIRouter`: FastAPI 0.165 matches an included router through a layer of
its own on every request, and a router of routers is two layers. In a profile of `GET /users/me`
the two took 7% of its CPU, one takes 5%, for a grouping nothing else uses. (Routes added to
the application's router directly would skip the layer, but their dependencies would no longer
see `app.dependency_overrides`.)
"""

from app.api.routes import auth, health, users

routers = (health.router, auth.router, users.router)
