from fairnad.cli import main

main()
