"""Package layout (metadata is in pyproject.toml): dtr's packages, plus ``migrations/`` shipped as ``dtr._migrations``.

``migrations/`` stays where migrations are written (``alembic`` and ruff see it at the top); the
wheel carries it inside the package, where ``dtr.db.migrate`` finds it. pyproject.toml cannot
map one directory to a package while also discovering the others, hence this file.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["dtr", "dtr.*"]), "dtr._migrations", "dtr._migrations.versions"],
    package_dir={"dtr._migrations": "migrations"},
    # The web UI's templates and static files (htmx, its license, dtr.js, dtr.css) ship in the wheel.
    package_data={"dtr": ["py.typed", "deploy/dtr.service", "deploy/config.yaml", "ui/templates/*.html", "ui/static/*"],
                  "dtr._migrations": ["script.py.mako"]},
)
