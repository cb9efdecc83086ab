from mutualaid.runtime.main import run

from .app import build_app
from .settings import ClaimsSettings


def main() -> None:
    run("claims", ClaimsSettings, build_app)


if __name__ == "__main__":
    main()
