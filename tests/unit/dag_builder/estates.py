"""The estate the DAG builder tests start from: app `shop` (one `web` component) and a `dev`
environment with one docker target, indented as the test modules write estates. A module appends
its environments, indented the same way, and dedents the whole:

    ESTATE = textwrap.dedent(SHOP_DEV + '''\
          - name: prod
            targets: [{name: prod-1, type: docker, connection: c_prod}]
    ''')
"""

SHOP_DEV = """
    registries: [{host: "reg.local:5000", scheme: http}]
    apps:
      - name: shop
        components: [{name: web, repository: reg.local:5000/demo/web}]
    environments:
      - name: dev
        targets: [{name: dev-1, type: docker, connection: c_dev}]
"""
