"""run.threads = 0 (auto): free cores by load average, and choices already made win."""

from demtui.threads import auto_threads, choose_threads


def test_auto_takes_free_cores_at_least_one() -> None:
    assert auto_threads(cores=2, load=0.0) == 2
    assert auto_threads(cores=2, load=0.6) == 1  # 1.4 free rounds to 1
    assert auto_threads(cores=2, load=5.0) == 1  # overloaded: never 0
    assert auto_threads(cores=8, load=2.2) == 6
    assert auto_threads(cores=4, load=-1.0) == 4  # never more than the cores


def test_explicit_count_and_environment_win_over_auto() -> None:
    assert choose_threads(3, "cpu", env={"OMP_NUM_THREADS": "1"}, cores=2, load=0)[0] == 3
    n, why = choose_threads(0, "cpu", env={"OMP_NUM_THREADS": "1"}, cores=2, load=0)
    assert n is None and "OMP_NUM_THREADS" in why
    assert choose_threads(0, "cpu", env={}, cores=2, load=1.0)[0] == 1
    assert choose_threads(0, "cuda", env={}, cores=2, load=0)[0] is None  # GPU runs keep torch's default
