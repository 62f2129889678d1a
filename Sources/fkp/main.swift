import ArgumentParser
FKP.main()
