"""The CDN-like edge cache in front of an hlsdash origin: ``ops/nginx/run-edge`` (``-m ops.edge``).

Two caches can run as the edge: Varnish (the default, ``ops/varnish/edge.py``) and nginx
(``ops/nginx/edge.py``). Both key the cache by path + LL-HLS directives, honour the origin's
``Cache-Control`` and collapse concurrent misses into one origin request. They differ in how a
collapsed request is released: Varnish wakes its waiting list when the first answer arrives,
nginx polls its cache lock every 500 ms (README, *Edge cache*), which is why Varnish is the default.
"""
