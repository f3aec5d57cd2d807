"""The web console's static files (`static/`), served at `/console` by api/routes/console.py."""
