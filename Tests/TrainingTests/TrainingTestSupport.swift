import Datasets
import DenseNetModels
import Foundation
import Training
import XCTest

/// A tiny DenseNet at Fashion-MNIST's 28x28 (with dropout, so the dropout seed stream matters):
/// a few thousand parameters, milliseconds per batch.
func tinyDenseNet(dropRate: Double = 0) -> DenseNetConfiguration {
    DenseNetConfiguration(name: "tiny", growthRate: 4, blockConfig: [2, 2], initialFeatures: 8, bottleneckFactor: 2,
                          compression: 0.5, dropRate: dropRate, classCount: 10,
                          inputShape: FeatureShape(channels: 1, height: 28, width: 28), stem: .cifar)
}

func requireFashionMNIST() throws {
    guard FashionMNIST.isAvailable(.train), FashionMNIST.isAvailable(.test) else {
        throw XCTSkip("Fashion-MNIST is not installed at \(FashionMNIST.defaultDirectory) (Scripts/setup.sh --data)")
    }
}
