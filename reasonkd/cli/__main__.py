from reasonkd.cli import run

run()
