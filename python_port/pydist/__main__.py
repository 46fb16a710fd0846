from pydist.cli import main

main()
