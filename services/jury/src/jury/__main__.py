from mutualaid.runtime.main import run

from .app import build_app
from .settings import JurySettings


def main() -> None:
    run("jury", JurySettings, build_app)


if __name__ == "__main__":
    main()
