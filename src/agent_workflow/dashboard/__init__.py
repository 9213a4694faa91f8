"""The web dashboard (`/dashboard` of `aw serve`): tasks, their history, totals; one action.

Server-rendered HTML (Jinja2, autoescaped) and plain forms: nothing is fetched from
anywhere but this server, so it works offline and behind a strict content policy.
"""
