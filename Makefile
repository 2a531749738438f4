# marepo_ros: `make demo` shows the whole product; `make setup` builds .venv with everything;
# `make test` runs the default tests.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.setup-done
# A sourced ROS 2 (ROS_DISTRO set and rclpy importable) is used instead of the PyPI wheels.
ROS_SOURCED := $(shell $(PYTHON) -c "import rclpy" >/dev/null 2>&1 && echo yes)

.PHONY: setup demo test test-all bench clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-ros.txt setup.py setup.cfg package.xml scripts/build_tf2_msgs.py
ifeq ($(ROS_SOURCED),yes)
	@echo "using the sourced ROS 2 ($(ROS_DISTRO)) for rclpy"
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -m pip install -q -r requirements.txt
else
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt -r requirements-ros.txt
	@# the wheels carry no tf2_msgs (the type of /tf): build it from its definition
	$(PY) scripts/build_tf2_msgs.py --venv $(VENV) || echo "note: tf2_msgs not built (needs gcc and g++): the node broadcasts no TF"
endif
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	$(PY) -c "import torch, cv2, rosbags, marepo_ros; print('torch', torch.__version__, '| marepo_ros ready')"
	@touch $(STAMP)

demo: setup
	$(PY) -m marepo_ros.cli demo --out runs/demo

test: setup
	$(PY) -m pytest -q test

test-all: setup
	$(PY) -m pytest -q -m "slow or not slow" test

bench: setup
	$(PY) benchmarks/redkitchen.py
	$(PY) benchmarks/regressors.py
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/suite.py --estimators points ransac hybrid cascade
	$(PY) benchmarks/fit_confidence.py --write
	$(PY) benchmarks/forward_motion.py
	$(PY) benchmarks/bag_parity.py
	$(PY) benchmarks/map_from_bag.py
	$(PY) benchmarks/drift.py
	$(PY) benchmarks/no_poses.py
	$(PY) benchmarks/scale.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
