from mutualaid.runtime.main import run

from .app import build_app
from .settings import PublicitySettings


def main() -> None:
    run("publicity", PublicitySettings, build_app)


if __name__ == "__main__":
    main()
