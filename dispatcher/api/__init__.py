"""The HTTP API (``python -m dispatcher api``): for apps in any language and operators.

app.py wires it; auth.py the Bearer tokens; problems.py the errors; campaigns.py the
requests that create and steer campaigns; streams.py the answers that stream (results, the
progress events). The contract is openapi.json, served at ``/openapi.json``.
"""
