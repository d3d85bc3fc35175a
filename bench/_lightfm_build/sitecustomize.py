"""Build shim for lightfm 1.17 only; used as
``PYTHONPATH="$PWD/bench/_lightfm_build" pip install ...``.

lightfm 1.17's setup.py runs ``__builtins__.__LIGHTFM_SETUP__ = True``. That works when setup.py
is ``__main__`` (the old ``setup.py install`` path pip no longer takes), but under setuptools'
PEP 517 backend the script is ``exec``'d with ``__builtins__`` being a dict, and the build dies
with ``AttributeError: 'dict' object has no attribute '__LIGHTFM_SETUP__'`` (lyst/lightfm#687).
With ``--no-build-isolation`` the backend runs in this environment, so this ``sitecustomize``
makes it exec setup.py with the real ``builtins`` module. Nothing else is changed, and nothing
outside that one pip command ever loads this file.
"""

import builtins
import os

try:
    import setuptools.build_meta as _build_meta

    def _run_setup(self, setup_script="setup.py"):
        path = os.path.abspath(setup_script)
        with open(path, encoding="utf-8") as fh:
            code = fh.read()
        namespace = {"__file__": path, "__name__": "__main__", "__builtins__": builtins}
        exec(compile(code, path, "exec"), namespace)

    _build_meta._BuildMetaBackend.run_setup = _run_setup
except ImportError:  # setuptools missing: pip will report that itself
    pass
