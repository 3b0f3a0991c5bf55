"""The agent and supervisor console in the browser (issue 13).

Served by the controller's aiohttp app (`callflow.console.web.mount`): pages rendered with
jinja2, live updates over server-sent events, people and roles in the store's database.
Everything live is read through `callflow.console.live`, the one module that knows the
controller's and the desk's objects.
"""
